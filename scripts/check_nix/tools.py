"""Running the programs the checks need: nix-instantiate against a dummy store (nothing is
built or read from a store), git for the repository's file list, anything else with its
output captured. Errors carry the command's stderr."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

STUBS = Path(__file__).resolve().parent / "stubs"


class ToolError(Exception):
    """A program failed (or is missing); the message says which and why."""


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        raise ToolError(f"{', '.join(missing)} not found")


def run(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 600,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs cmd, capturing text output; never raises for a non-zero exit."""
    return subprocess.run(
        list(cmd),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tail(text: str, lines: int = 8, chars: int = 1200) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])[-chars:]


class Nix:
    """nix-instantiate with NIX_REMOTE=dummy://: no daemon socket (absent, or closed to
    non-root users, on CI machines) and no store reads; parsing and pure evaluation only."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = dict(os.environ, NIX_REMOTE="dummy://")

    def _run(self, args: list[str]) -> str:
        p = run(["nix-instantiate", *args], cwd=self.root, env=self.env)
        if p.returncode != 0:
            raise ToolError(tail(p.stderr, lines=12, chars=2000) or f"nix-instantiate exit {p.returncode}")
        return p.stdout

    def parse(self, path: Path) -> str:
        return self._run(["--parse", str(path)])

    def eval_json(
        self,
        *,
        expr: str | None = None,
        file: Path | None = None,
        args: Mapping[str, str] | None = None,
        argstrs: Mapping[str, str] | None = None,
    ) -> Any:
        """The strict JSON value of `expr` or of the function in `file` applied to the
        arguments (`args` are Nix expressions, `argstrs` strings)."""
        cmd = ["--eval", "--strict", "--json"]
        if expr is not None:
            cmd += ["-E", expr]
        if file is not None:
            cmd.append(str(file))
        for k, v in (args or {}).items():
            cmd += ["--arg", k, v]
        for k, v in (argstrs or {}).items():
            cmd += ["--argstr", k, v]
        return json.loads(self._run(cmd))

    def stub(self, name: str, root: Path | None = None, **argstrs: str) -> Any:
        """Evaluates stubs/<name>.nix with `root` (the repository, or a copy) and argstrs."""
        return self.eval_json(
            file=STUBS / f"{name}.nix",
            args={"root": str(root or self.root)},
            argstrs=argstrs,
        )


def git_files(root: Path, *patterns: str) -> list[str]:
    """Tracked and untracked-but-not-ignored files matching the patterns, sorted."""
    p = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *patterns], cwd=root)
    if p.returncode != 0:
        raise ToolError(f"git ls-files failed in {root}: {tail(p.stderr)}")
    return sorted(set(p.stdout.split("\n")) - {""})
