"""What every check gets: the repository root, a scratch directory, the report, nix-instantiate,
and a deskd binary (built once, on first use, unless DESKD_BIN names one)."""

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .report import Report
from .tools import Nix, ToolError, run, tail


@dataclass
class Context:
    root: Path
    tmp: Path
    report: Report
    nix: Nix = field(init=False)
    _deskd: Path | None = field(default=None, init=False)
    _deskd_error: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.nix = Nix(self.root)

    def stand_in_pkgs(self) -> Path:
        """The directory the Nix stand-ins put packages under; the programs deskd check and
        systemd-analyze look for exist there (as `true`)."""
        d = self.scratch("pkgs")
        true = shutil.which("true") or "/bin/true"
        for p in ("deskd", "neko", "pulseaudio", "openbox", "xterm"):
            b = d / p / "bin"
            b.mkdir(parents=True, exist_ok=True)
            if not (b / p).exists():
                (b / p).symlink_to(true)
        return d

    def scratch(self, name: str) -> Path:
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def target_dir(self) -> Path:
        p = run(["cargo", "metadata", "--locked", "--offline", "--format-version", "1", "--no-deps"], cwd=self.root)
        if p.returncode != 0:
            raise ToolError(f"cargo metadata --no-deps: {tail(p.stderr)}")
        return Path(json.loads(p.stdout)["target_directory"])

    def deskd(self) -> Path:
        """The deskd binary for `deskd check` and runs; raises ToolError if it cannot be had."""
        if self._deskd is not None:
            return self._deskd
        if self._deskd_error is not None:
            raise ToolError(self._deskd_error)
        given = os.environ.get("DESKD_BIN")
        if given:
            self._deskd = Path(given)
            return self._deskd
        p = run(["cargo", "build", "--locked", "-q", "-p", "deskd", "--bin", "deskd"], cwd=self.root, timeout=1800)
        if p.returncode != 0:
            self._deskd_error = f"cargo build of deskd failed: {tail(p.stderr)}"
            raise ToolError(self._deskd_error)
        self._deskd = self.target_dir() / "debug" / "deskd"
        return self._deskd

    def deskd_check(self, toml_file: Path, what: str) -> None:
        """ok if `deskd check` accepts the file (with an empty conf.d), else FAIL with its output."""
        try:
            deskd = self.deskd()
        except ToolError as e:
            self.report.bad(f"deskd check of {what}: {e}")
            return
        empty = self.scratch("empty-conf.d")
        p = run([str(deskd), "check", "-c", str(toml_file), "--conf-d", str(empty)])
        if p.returncode == 0:
            self.report.ok(f"deskd check accepts {what}")
        else:
            self.report.bad(f"deskd check rejects {what} (exit {p.returncode}):\n{(p.stdout + p.stderr).strip()}")
