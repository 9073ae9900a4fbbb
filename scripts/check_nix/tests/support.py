"""Helpers for the checker's tests: the repository root, and a scratch copy of some of its
directories in which a test can put a defect back."""

import shutil
import tempfile
import unittest
from pathlib import Path

from check_nix.tools import Nix

ROOT = Path(__file__).resolve().parents[3]


class RepoCopy(unittest.TestCase):
    """setUp copies COPY (paths relative to the root) into self.root; self.nix evaluates there."""

    COPY: tuple[str, ...] = ()

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="check-nix-test.")
        self.root = Path(self._tmp.name) / "repo"
        for rel in self.COPY:
            src, dst = ROOT / rel, self.root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
        self.pkgs = Path(self._tmp.name) / "pkgs"
        self.pkgs.mkdir()
        self.nix = Nix(self.root)

    def tearDown(self) -> None:
        self._tmp.cleanup()

    def edit(self, rel: str, old: str, new: str) -> None:
        """Replaces old (which must be there) with new in a copied file."""
        path = self.root / rel
        text = path.read_text()
        self.assertIn(old, text, f"{rel} no longer has the text this test edits")
        path.write_text(text.replace(old, new))

    def stub(self, name: str) -> dict:
        return self.nix.stub(name, root=self.root, pkgsDir=str(self.pkgs))
