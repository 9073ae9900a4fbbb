import json
import time
import unittest

from check_nix.checks import flake, pin
from check_nix.tests.support import ROOT


class LockTest(unittest.TestCase):
    def setUp(self):
        self.lock = json.loads((ROOT / "flake.lock").read_text())

    def test_the_repository_lock_is_clean(self):
        self.assertEqual(flake.lock_problems(self.lock, "nixos-26.05", time.time()), [])

    def test_another_branch_a_short_rev_and_a_future_timestamp_are_caught(self):
        locked = self.lock["nodes"]["nixpkgs"]["locked"]
        locked["rev"] = "abc"
        locked["lastModified"] = int(time.time()) + 3600
        problems = flake.lock_problems(self.lock, "nixos-25.11", time.time())
        self.assertEqual(len(problems), 3, problems)


class PinTest(unittest.TestCase):
    def test_null_hashes_are_unpinned_not_wrong(self):
        p, unpinned = pin.pin_problems(json.loads((ROOT / "image/neko-base.json").read_text()))
        self.assertEqual(p, [])

    def test_a_bad_hash_is_caught(self):
        d = {"imageName": "ghcr.io/m1k1o/neko/base", "imageDigest": "sha256:" + "0" * 64, "finalImageTag": "t",
             "hash": {"amd64": "sha256-short", "arm64": None}}
        p, unpinned = pin.pin_problems(d)
        self.assertEqual(unpinned, ["arm64"])
        self.assertEqual(len(p), 1, p)


if __name__ == "__main__":
    unittest.main()
