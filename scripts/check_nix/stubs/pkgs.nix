# A stand-in for a nixpkgs package set (check-nix). A package is a directory under pkgsDir
# named after it (check-nix puts a bin/ there where a program must run); derivation builders
# return their arguments so the checks can read what the repository's Nix files hand them.
# An attribute missing here fails the evaluation with its name: add it if nixpkgs has it.
{
  pkgsDir,
  system ? "x86_64-linux",
}:
let
  lib = import ./lib.nix;
  stub = name: {
    inherit name;
    pname = name;
    outPath = "${pkgsDir}/${name}";
    meta.mainProgram = name;
  };
  # stdenv.mkDerivation and friends: the attributes as given, overridable.
  derivation =
    args:
    let
      attrs = if builtins.isFunction args then args attrs else args;
      name = attrs.pname or attrs.name;
    in
    stub name
    // attrs
    // {
      drvAttrs = attrs;
      overrideAttrs = f: derivation (attrs // (if builtins.isFunction f then f attrs else f));
      meta = (stub name).meta // (attrs.meta or { });
    };
  packages = builtins.listToAttrs (
    map (n: lib.nameValuePair n (stub n)) [
      "autoPatchelfHook"
      "bashInteractive"
      "cacert"
      "chromedriver"
      "chromium"
      "coreutils"
      "curl"
      "curlMinimal"
      "dejavu_fonts"
      "glib"
      "gtk3"
      "cairo"
      "pango"
      "gdk-pixbuf"
      "atk"
      "harfbuzz"
      "jq"
      "libxcvt"
      "libx11"
      "libxrandr"
      "libxtst"
      "libxfixes"
      "libxi"
      "makeWrapper"
      "nasm"
      "nodejs"
      "openbox"
      "procps"
      "pulseaudio"
      "python3"
      "setxkbmap"
      "util-linux"
      "vanilla-dmz"
      "xclip"
      "xdotool"
      "xdpyinfo"
      "xorg-server"
      "xrandr"
      "xterm"
      "xvfb"
      "zlib"
      "zstd"
    ]
  );
  pkgs =
    packages
    // {
      inherit lib;
      stdenv = {
        hostPlatform = {
          inherit system;
          isx86 = system == "x86_64-linux";
          isAarch64 = system == "aarch64-linux";
        };
        mkDerivation = derivation;
      };
      callPackage =
        f: overrides:
        let
          fn = if builtins.isFunction f then f else import f;
        in
        fn (builtins.intersectAttrs (builtins.functionArgs fn) pkgs // overrides);
      rustPlatform.buildRustPackage = derivation;
      runCommand = name: env: script: stub name // { inherit env script; };
      buildEnv = args: stub args.name // { inherit args; };
      makeFontsConf = args: stub "fonts.conf" // { inherit args; };
      formats.toml =
        { }:
        {
          type = lib.types.mk "toml" builtins.isAttrs;
          generate = name: value: stub name // { inherit value; };
        };
      dockerTools = {
        streamLayeredImage =
          args:
          stub "stream-${args.name}"
          // (args.passthru or { })
          // {
            streamLayeredImageArgs = args;
            imageName = args.name;
            imageTag = args.tag;
          };
        pullImage = args: stub "docker-image-${args.finalImageName}.tar" // { inherit args; };
        fakeNss = stub "fake-nss" // {
          override = args: stub "fake-nss" // { inherit args; };
        };
        usrBinEnv = stub "usr-bin-env";
        caCertificates = stub "ca-certificates";
      };
      testers.runNixOSTest = test: test;
      python3 = packages.python3 // {
        withPackages = _: stub "python3-env";
      };
      gst_all_1 = {
        gstreamer = stub "gstreamer" // {
          bin = stub "gstreamer-bin";
          lib = stub "gstreamer";
        };
        gst-plugins-base = stub "gst-plugins-base";
        gst-plugins-good = stub "gst-plugins-good";
        gst-plugins-bad = stub "gst-plugins-bad";
        gst-plugins-ugly = stub "gst-plugins-ugly";
      };
      mkShell = args: stub "shell" // { inherit args; };
    };
in
pkgs
