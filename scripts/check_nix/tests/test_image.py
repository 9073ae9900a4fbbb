"""image/default.nix through the image check, with issue 9's defects put back."""

import unittest

from check_nix.checks import image
from check_nix.tests.support import RepoCopy

RUN_DIR = "/run/deskd"


class ImageCheckTest(RepoCopy):
    COPY = ("image", "nix")

    def test_the_fixed_image_has_no_problems(self):
        self.assertEqual(image.set_problems(self.stub("image"), RUN_DIR), [])

    def test_a_window_manager_probe_on_the_default_display_is_caught(self):
        # Issue 9, defect 3: settings.nix's own default (:99) for ready.wm.
        self.edit("image/default.nix", "    display = displayNumber;\n", "")
        problems = image.set_problems(self.stub("image"), RUN_DIR)
        self.assertTrue(any("display7: display.number is 7 but the settings name display :99" in p for p in problems), problems)

    def test_a_missing_token_directory_is_caught(self):
        # Issue 9, defect 4: no /run/deskd for uid 1000.
        self.edit("image/default.nix", " ./etc/deskd/conf.d .${runtimeDir}", " ./etc/deskd/conf.d")
        problems = image.set_problems(self.stub("image"), RUN_DIR)
        self.assertTrue(any("no /run/deskd in the image" in p for p in problems), problems)

    def test_the_full_x_server_is_caught(self):
        # Issue 9, defect 7: xorg.xorgserver where pkgs.xvfb exists.
        self.edit("nix/xvfb.nix", "pkgs: pkgs.xvfb or pkgs.xorg-server", "pkgs: pkgs.xorg-server")
        problems = image.set_problems(self.stub("image"), RUN_DIR)
        self.assertTrue(any("should have pkgs.xvfb" in p for p in problems), problems)

    def test_an_extra_tcp_port_is_caught(self):
        view = self.stub("image")["default"]
        view["args"]["config"]["ExposedPorts"]["9999/tcp"] = {}
        self.assertTrue(any("TCP ports exposed" in p for p in image.image_problems("default", view, RUN_DIR)))


if __name__ == "__main__":
    unittest.main()
