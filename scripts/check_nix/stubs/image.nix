# image/default.nix with stand-ins for nixpkgs (check-nix): what it hands
# dockerTools.streamLayeredImage, for the default image and for derived ones.
{ root, pkgsDir }:
let
  pkgs = import ./pkgs.nix { inherit pkgsDir; };
  stub = name: {
    inherit name;
    outPath = "${pkgsDir}/${name}";
    meta.mainProgram = name;
  };
  mkImageWith =
    pkgs:
    import (root + "/image") {
      inherit pkgs;
      deskd = stub "deskd" // { version = "0.1.0"; };
      neko = stub "neko";
      revision = "0000000";
      source = "https://example.invalid/deskd";
    };
  mkImage = mkImageWith pkgs;
  view = img: {
    args = removeAttrs img.streamLayeredImageArgs [ "passthru" ];
    inherit (img) finalSettings;
    rootPaths = map (p: p.name) (
      (builtins.head img.streamLayeredImageArgs.contents).args.paths
    );
    closureReport = {
      inherit (img.closureReport) env script;
      roots = map (p: p.name) img.closureReport.env.exportReferencesGraph.closure;
    };
  };
in
{
  default = view (mkImage { });
  derived = view (mkImage {
    name = "my-desktop";
    tag = "1";
    settings = {
      http.listen = "0.0.0.0:9090";
      neko.epr = "59000-59002";
      neko.tcpmux = 59100;
      display.size = "1920x1080";
    };
    services = [
      {
        name = "browser";
        command = [ "sh" ];
        after = [ "window-manager" ];
      }
    ];
    labels."org.opencontainers.image.vendor" = "me";
  });
  # Another display number: everything derived from it must follow.
  display7 = view (mkImage { settings.display.number = 7; });
  minimal = view (mkImage { desktop = false; });
  # A package set without the Xvfb-only package: the full server, and no closure ban on it.
  noXvfb = view (mkImageWith (removeAttrs pkgs [ "xvfb" ]) { });
}
