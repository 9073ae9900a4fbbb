import io
import tomllib
import unittest

from check_nix import toml
from check_nix.report import Report
from check_nix.checks import files, neko, cargo


class ReportTest(unittest.TestCase):
    def test_lines_and_counts(self):
        out, err = io.StringIO(), io.StringIO()
        r = Report(out, err)
        r.step("a step")
        r.ok("fine")
        r.skip("not here")
        r.bad("broken\nsecond line")
        self.assertFalse(r.check(False, "cond", "why"))
        self.assertTrue(r.problems("none", []))
        self.assertEqual(out.getvalue(), "== a step\n   ok: fine\n   SKIP: not here\n   ok: none\n")
        self.assertEqual(err.getvalue(), "   FAIL: broken\n         second line\n   FAIL: cond: why\n")
        self.assertEqual((r.oks, r.skips, r.failures), (2, 1, 2))


class TomlTest(unittest.TestCase):
    def test_tables_arrays_of_tables_and_inline_tables(self):
        data = {
            "display": {"number": 7, "size": "1280x720"},
            "neko": {"nat1to1": ["127.0.0.1"], "audio": True,
                     "ice_servers": [{"urls": ["turn:x"], "username": "u"}]},
            "service": [{"name": "wm", "command": ["openbox"], "ready": {"wm": ":7"}}],
        }
        text = toml.dumps(data)
        self.assertEqual(tomllib.loads(text), data)
        self.assertIn('[["service"]]', text)

    def test_unrenderable_value_is_refused(self):
        with self.assertRaises(TypeError):
            toml.dumps({"a": None})


class PathLiteralsTest(unittest.TestCase):
    def test_absolute_paths_under_the_root_without_trailing_dot(self):
        parsed = '(import /r/image/default.nix) /r/nix/xvfb.nix. "/elsewhere/x" /rr/no'
        self.assertEqual(files.path_literals(parsed, "/r"), {"/r/image/default.nix", "/r/nix/xvfb.nix"})


class WrapperEnvTest(unittest.TestCase):
    def test_set_and_prefix(self):
        args = ["/out/libexec/neko", "/out/bin/neko", "--prefix", "P", ":", "/a", "--set", "GST_REGISTRY", "/r",
                "--prefix", "P", ":", "/b"]
        self.assertEqual(neko.wrapper_env(args), {"P": "/b:/a", "GST_REGISTRY": "/r"})


class BuildToolsTest(unittest.TestCase):
    def test_openh264_needs_nasm_on_x86(self):
        crates = {"deskd", "openh264-sys2"}
        self.assertTrue(cargo.tool_problems(crates, {"x86_64-linux": [], "aarch64-linux": []}))
        self.assertEqual(cargo.tool_problems(crates, {"x86_64-linux": ["nasm"], "aarch64-linux": []}), [])
        self.assertEqual(cargo.tool_problems({"deskd"}, {"x86_64-linux": []}), [])

    def test_locked_crates(self):
        lock = 'version = 4\n\n[[package]]\nname = "openh264-sys2"\nversion = "0.9.9"\n'
        self.assertEqual(cargo.locked_crates(lock), {"openh264-sys2"})


if __name__ == "__main__":
    unittest.main()
