# The package whose bin/Xvfb deskd's [display] runs, for a nixpkgs package set: `xvfb`, the
# Xvfb-only build (no Xorg, Xephyr or Xnest, no udev) where the set has it, so the image
# and the module do not pull in the whole Xorg server's closure; else the full server.
pkgs: pkgs.xvfb or pkgs.xorg-server or pkgs.xorg.xorgserver
