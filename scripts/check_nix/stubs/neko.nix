# image/neko.nix with stand-ins for nixpkgs (check-nix): the install script that builds the
# GStreamer registry and wraps neko, and the plugin path it uses.
{ root, pkgsDir }:
let
  pkgs = import ./pkgs.nix { inherit pkgsDir; };
  neko = pkgs.callPackage (root + "/image/neko.nix") {
    pin = {
      imageName = "ghcr.io/m1k1o/neko/base";
      imageDigest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}";
      finalImageTag = "pinned";
      hash = { };
    };
  };
in
{
  inherit (neko) installPhase;
  pluginPath = pkgs.lib.makeSearchPathOutput "lib" "lib/gstreamer-1.0" (
    with pkgs.gst_all_1;
    [
      gstreamer
      gst-plugins-base
      gst-plugins-good
      gst-plugins-bad
      gst-plugins-ugly
    ]
  );
}
