# nix/module.nix with stand-ins for nixpkgs and the module system (check-nix): its options'
# types and its `config` for a given, already merged services.deskd (no evalModules).
{ root, pkgsDir }:
let
  lib = import ./lib.nix;
  pkgs = import ./pkgs.nix { inherit pkgsDir; };
  stub = name: {
    inherit name;
    outPath = "${pkgsDir}/${name}";
    meta.mainProgram = name;
  };
  module = import (root + "/nix/module.nix") {
    packagesFor = system: {
      deskd = stub "deskd";
      neko = stub "neko";
    };
  };
  defaults = {
    enable = true;
    package = stub "deskd";
    nekoPackage = stub "neko";
    path = [ ];
    user = "deskd";
    group = "deskd";
    checkConfig = true;
    openFirewall = true;
    tokenFile = null;
    viewTokenFile = null;
    settings = { };
  };
  eval =
    cfg:
    module {
      inherit lib pkgs;
      config.services.deskd = defaults // cfg;
    };
  # What each option's type says of a value, as the module system would check it.
  typeCheck =
    option: value:
    let
      opt = (eval { }).options.services.deskd.${option};
    in
    opt.type.check value;
  failed = m: map (a: a.message) (builtins.filter (a: !a.assertion) (m.config.assertions or [ ]));
in
{
  plain = (eval { settings.http.listen = "0.0.0.0:8080"; }).config;
  tokens =
    (eval {
      tokenFile = "/run/secrets/t";
      viewTokenFile = "/run/secrets/v";
      settings = {
        http.listen = "[::]:9090";
        neko = {
          epr = "59000-59010";
          tcpmux = 59100;
        };
      };
    }).config;
  # Secret files: what the option types accept and which assertions fail.
  secrets = {
    pathLiteralTypeChecks = {
      tokenFile = typeCheck "tokenFile" (root + "/flake.nix");
      viewTokenFile = typeCheck "viewTokenFile" (root + "/flake.nix");
    };
    stringTypeChecks = typeCheck "tokenFile" "/run/secrets/t";
    outsideStore = failed (eval { tokenFile = "/run/secrets/t"; viewTokenFile = "/run/secrets/v"; });
    inStore = failed (eval {
      tokenFile = "${builtins.storeDir}/00000000000000000000000000000000-token";
      viewTokenFile = "${builtins.storeDir}/00000000000000000000000000000000-view-token";
    });
    relative = failed (eval { tokenFile = "secrets/token"; });
  };
}
