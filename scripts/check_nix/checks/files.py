"""Every .nix file parses, and every path literal inside the repository that a .nix file
names exists (a renamed file would otherwise only show at `nix build` time)."""

import re

from ..context import Context
from ..tools import ToolError, git_files

TITLE = "every .nix file parses and names only files that exist"


def path_literals(parsed: str, root: str) -> set[str]:
    """Absolute paths under root in `nix-instantiate --parse` output (path literals come out
    absolute); a trailing dot is punctuation, not part of the path."""
    return {m.rstrip(".") for m in re.findall(re.escape(root) + r"/[A-Za-z0-9._/+-]*", parsed)}


def check(ctx: Context) -> None:
    files = git_files(ctx.root, "*.nix")
    if "flake.nix" not in files:
        ctx.report.bad(f"flake.nix is not among the files git lists in {ctx.root}")
        return
    ctx.report.step(f"{TITLE} ({len(files)} files)")
    for f in files:
        try:
            parsed = ctx.nix.parse(ctx.root / f)
        except ToolError as e:
            ctx.report.bad(f"{f} does not parse: {e}")
            continue
        missing = sorted(p for p in path_literals(parsed, str(ctx.root)) if not (ctx.root / p[len(str(ctx.root)) + 1 :]).exists())
        if missing:
            for p in missing:
                ctx.report.bad(f"{f} names {p}, which does not exist")
        else:
            ctx.report.ok(f)
