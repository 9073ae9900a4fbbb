"""The checker's output: one `== step` line per check, then `ok:`, `FAIL:` (on stderr) and
`SKIP:` lines; counts the failures so the run can exit non-zero on any."""

import sys
from typing import TextIO


class Report:
    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.out = out
        self.err = err
        self.failures = 0
        self.oks = 0
        self.skips = 0

    def step(self, title: str) -> None:
        self.out.write(f"== {title}\n")
        self.out.flush()

    def ok(self, what: str) -> None:
        self.oks += 1
        self.out.write(f"   ok: {what}\n")
        self.out.flush()

    def bad(self, what: str) -> None:
        self.failures += 1
        self.out.flush()
        self.err.write(f"   FAIL: {indent(what)}\n")
        self.err.flush()

    def skip(self, what: str) -> None:
        self.skips += 1
        self.out.write(f"   SKIP: {what}\n")
        self.out.flush()

    def check(self, cond: bool, what: str, why: str = "") -> bool:
        """ok(what) if cond, else bad(what: why)."""
        if cond:
            self.ok(what)
        else:
            self.bad(f"{what}: {why}" if why else what)
        return cond

    def problems(self, what: str, problems: list[str]) -> bool:
        """ok(what) when the list is empty, else one FAIL line per problem."""
        if not problems:
            self.ok(what)
            return True
        for p in problems:
            self.bad(p)
        return False


def indent(text: str) -> str:
    """Continuation lines of a multi-line message line up under the first."""
    return text.rstrip("\n").replace("\n", "\n         ")
