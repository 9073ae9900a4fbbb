"""nix/module.nix through the module check, with the secret-path defect put back."""

import unittest

from check_nix.checks import module
from check_nix.tests.support import RepoCopy


class ModuleCheckTest(RepoCopy):
    COPY = ("nix",)

    def test_the_fixed_module_has_no_problems(self):
        m = self.stub("module")
        self.assertEqual(module.secret_problems(m["secrets"]), [])
        self.assertEqual(module.wiring_problems(m), [])

    def test_a_path_typed_token_file_is_caught(self):
        # Issue 9, defect 5: types.path, and no assertion.
        self.edit("nix/module.nix", "type = lib.types.nullOr lib.types.str;", "type = lib.types.nullOr lib.types.path;")
        self.edit("nix/module.nix", "      file == null || (lib.hasPrefix \"/\" file && !lib.hasPrefix \"${builtins.storeDir}/\" file);",
                  "      true;")
        problems = module.secret_problems(self.stub("module")["secrets"])
        self.assertTrue(any("accepts a Nix path" in p for p in problems), problems)
        self.assertTrue(any("in the store must both fail" in p for p in problems), problems)

    def test_the_unit_renders_one_line_per_list_element(self):
        svc = {"description": "d", "after": ["a"], "serviceConfig": {"X": [1, 2], "B": True}, "wantedBy": ["m"]}
        self.assertEqual(module.unit_text(svc), "[Unit]\nDescription=d\nAfter=a\n[Service]\nX=1\nX=2\nB=true\n[Install]\nWantedBy=m\n")


if __name__ == "__main__":
    unittest.main()
