"""scripts/check-nix's main: runs the checks (all, or those named with --only), prints their
lines, exits 1 if any failed, 2 if a tool it cannot do without is missing."""

import argparse
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from .checks import ALL
from .context import Context
from .report import Report
from .tools import ToolError, need

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="scripts/check-nix", description=__doc__)
    ap.add_argument("--only", action="append", choices=sorted(ALL), metavar="CHECK",
                    help=f"run only this check (repeatable): {', '.join(ALL)}")
    ap.add_argument("--skip", action="append", choices=sorted(ALL), metavar="CHECK", default=[],
                    help="leave this check out (repeatable)")
    ap.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        need("nix-instantiate", "git", "cargo", "jq", "bash")
    except ToolError as e:
        print(f"check-nix: {e}", file=sys.stderr)
        return 2
    report = Report()
    with tempfile.TemporaryDirectory(prefix="check-nix.") as tmp:
        # Other users (the image's uid 1000, nobody) read and write in there in some checks.
        Path(tmp).chmod(0o755)
        ctx = Context(root=args.root.resolve(), tmp=Path(tmp), report=report)
        for name, mod in ALL.items():
            if (args.only and name not in args.only) or name in args.skip:
                continue
            try:
                mod.check(ctx)
            except ToolError as e:
                report.bad(f"{name}: {e}")
            except Exception:  # a bug in the checker is a failure too, with its traceback
                report.bad(f"{name}: the check itself crashed:\n{traceback.format_exc()}")
    print()
    if report.failures:
        print(f"check-nix: {report.failures} check(s) failed", file=sys.stderr)
        return 1
    print(f"check-nix: all checks passed ({report.oks} ok, {report.skips} skipped)")
    return 0
