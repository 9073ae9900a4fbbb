# A stand-in for nixpkgs' lib (check-nix): the functions this repository's Nix files call,
# with nixpkgs' semantics where a check depends on them (types check their values as
# lib/types.nix does; mkIf/mkDefault are resolved at once, there is no module system).
rec {
  inherit (builtins)
    head
    filter
    listToAttrs
    substring
    hasAttr
    ;
  last = l: builtins.elemAt l (builtins.length l - 1);
  toInt = s: builtins.fromJSON s;
  splitString =
    sep: s:
    builtins.filter builtins.isString (
      builtins.split (builtins.replaceStrings [ "." "+" "*" ] [ "\\." "\\+" "\\*" ] sep) s
    );
  range = a: b: builtins.genList (i: a + i) (b - a + 1);
  optional = c: x: if c then [ x ] else [ ];
  optionals = c: l: if c then l else [ ];
  optionalAttrs = c: x: if c then x else { };
  optionalString = c: s: if c then s else "";
  nameValuePair = name: value: { inherit name value; };
  genAttrs = names: f: builtins.listToAttrs (map (n: nameValuePair n (f n)) names);
  hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
  getExe = p: "${p}/bin/${p.meta.mainProgram}";
  getBin = p: p.bin or p.out or p;
  makeBinPath = ps: builtins.concatStringsSep ":" (map (p: "${getBin p}/bin") ps);
  makeSearchPathOutput =
    output: sub: ps: builtins.concatStringsSep ":" (map (p: "${p.${output} or p}/${sub}") ps);
  escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";
  escapeShellArgs = l: builtins.concatStringsSep " " (map escapeShellArg l);
  recursiveUpdate =
    a: b:
    a
    // builtins.mapAttrs (
      n: v: if builtins.isAttrs v && builtins.isAttrs (a.${n} or null) then recursiveUpdate a.${n} v else v
    ) b;
  importJSON = p: builtins.fromJSON (builtins.readFile p);
  importTOML = p: builtins.fromTOML (builtins.readFile p);
  warn = _msg: x: x;
  fakeHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  fileset = {
    unions = l: l;
    toSource = { root, fileset }: { inherit root fileset; outPath = toString root; };
  };
  licenses.asl20 = "asl20";
  platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  sourceTypes.binaryNativeCode = "binaryNativeCode";

  # The module system, flattened: a module's config is read as it is written.
  mkIf = c: x: if c then x else { };
  mkDefault = x: x;
  mkForce = x: x;
  mkOption = x: x;
  mkEnableOption = x: { type = types.bool; };
  literalMD = x: x;
  literalExpression = x: x;
  types = rec {
    mk = name: check: { inherit name check; };
    str = mk "str" builtins.isString;
    bool = mk "bool" builtins.isBool;
    # lib/types.nix: a string-like whose text starts with "/"; a Nix path literal passes.
    path = mk "path" (x: (builtins.isPath x || builtins.isString x) && builtins.substring 0 1 (toString x) == "/");
    package = mk "package" builtins.isAttrs;
    listOf = t: mk "listOf ${t.name}" (x: builtins.isList x && builtins.all t.check x);
    nullOr = t: mk "nullOr ${t.name}" (x: x == null || t.check x);
  };
}
