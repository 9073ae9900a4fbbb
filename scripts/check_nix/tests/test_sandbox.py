import unittest
from pathlib import Path

from check_nix.checks import sandbox


class SandboxTest(unittest.TestCase):
    def test_an_input_without_a_stand_in_is_named(self):
        _, problems = sandbox.stand_in_programs(["no-such-nixpkgs-package"])
        self.assertTrue(any("pkgs.no-such-nixpkgs-package" in p and "no Debian stand-in" in p for p in problems))

    def test_sh_is_bash_as_in_nixpkgs(self):
        progs, _ = sandbox.stand_in_programs([])
        self.assertEqual(progs["sh"].name, "bash")

    def test_the_environment_has_no_locale_unless_the_check_sets_one(self):
        env, dropped = sandbox.sandbox_env({}, "/stub", Path("/bin-dir"), Path("/t"))
        self.assertNotIn("LANG", env)
        self.assertEqual((env["HOME"], env["PATH"]), ("/homeless-shelter", "/bin-dir"))
        env, dropped = sandbox.sandbox_env({"LANG": "C.UTF-8", "FONTCONFIG_FILE": "/stub/fonts.conf"}, "/stub",
                                           Path("/b"), Path("/t"))
        self.assertEqual((env["LANG"], dropped), ("C.UTF-8", ["FONTCONFIG_FILE"]))

    def test_failures_are_extracted(self):
        out = ("test a ... ok\ntest b ... FAILED\n\nfailures:\n\n---- b stdout ----\npanicked at x\n\n"
               "failures:\n    b\n")
        self.assertEqual(sandbox.failed_tests(out), ["b"])
        self.assertEqual(sandbox.failure_sections(out), "---- b stdout ----\npanicked at x")


if __name__ == "__main__":
    unittest.main()
