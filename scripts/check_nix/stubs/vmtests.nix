# The VM tests' Python scripts rendered with stand-ins for nixpkgs (check-nix), with the
# names of their nodes.
{ root, pkgsDir }:
let
  pkgs = import ./pkgs.nix { inherit pkgsDir; } // {
    # Store-like paths: the scripts interpolate them into shell commands.
    chromium.outPath = "/nix/store/00000000000000000000000000000000-chromium";
    chromedriver.outPath = "/nix/store/00000000000000000000000000000000-chromedriver";
  };
  mkImage = import (root + "/image") {
    inherit pkgs;
    deskd = pkgs.xterm // { name = "deskd"; version = "0.1.0"; };
    neko = pkgs.xterm // { name = "neko"; };
    revision = "0000000";
    source = "https://example.invalid/deskd";
  };
  nodes = {
    server.networking.primaryIPAddress = "192.168.1.2";
    desktop.networking.primaryIPAddress = "192.168.1.2";
    client.networking.primaryIPAddress = "192.168.1.1";
  };
  script = t: if builtins.isFunction t.testScript then t.testScript { inherit nodes; } else t.testScript;
  stream = import (root + "/nixos-tests/stream.nix") {
    inherit pkgs;
    module = { };
  };
  image = import (root + "/nixos-tests/image.nix") {
    inherit pkgs;
    image = mkImage { };
    derived = mkImage {
      name = "deskd-derived";
      settings.display.number = 42;
    };
  };
in
{
  stream = script stream;
  image = script image;
  nodes = {
    stream = builtins.attrNames stream.nodes;
    image = builtins.attrNames image.nodes;
  };
}
