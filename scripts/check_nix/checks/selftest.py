"""The checker's own unit tests (scripts/check_nix/tests), run first: a check whose logic
is broken would otherwise pass whatever it looks at."""

import sys
from pathlib import Path

from ..context import Context
from .. import tools

TITLE = "the checker's own tests (python3 -m unittest, scripts/check_nix/tests)"


def check(ctx: Context) -> None:
    r = ctx.report
    r.step(TITLE)
    scripts = Path(__file__).resolve().parents[2]
    p = tools.run([sys.executable, "-B", "-m", "unittest", "discover", "-s", "check_nix/tests", "-t", "."],
                  cwd=scripts, timeout=900)
    summary = next((l for l in reversed(p.stderr.splitlines()) if l.startswith("Ran ")), "no tests ran")
    if p.returncode == 0 and summary != "no tests ran":
        r.ok(f"{summary.lower()}: OK")
    else:
        r.bad(f"the checker's tests fail ({summary}):\n{tools.tail(p.stderr, lines=60, chars=6000)}")
