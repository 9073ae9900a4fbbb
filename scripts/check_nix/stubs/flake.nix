# flake.nix's outputs with stand-ins for nixpkgs (check-nix): their names, and what the Rust
# test check and the deskd package hand their builders.
{ root, pkgsDir }:
let
  lib = import ./lib.nix;
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs systems (system: import ./pkgs.nix { inherit pkgsDir system; });
  };
  flake = import (root + "/flake.nix");
  self = flake.outputs { inherit self nixpkgs; };
  names = p: builtins.mapAttrs (_: builtins.attrNames) p;
  tests = self.checks.x86_64-linux.deskd-tests;
in
{
  names = {
    checks = names self.checks;
    packages = names self.packages;
  };
  deskdTests = {
    inherit (tests) pname cargoTestFlags checkFlags;
    env = tests.env or { };
    nativeCheckInputs = map (p: p.pname) tests.nativeCheckInputs;
  };
  deskdNativeBuildInputs = lib.genAttrs systems (
    system: map (p: p.pname) (self.packages.${system}.deskd.nativeBuildInputs or [ ])
  );
}
