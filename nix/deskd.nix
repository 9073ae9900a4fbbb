# deskd, the PID-1 supervisor, built from this repository's Cargo workspace.
#
# Only the Rust sources go into the build (lib.fileset), so editing the docs, the
# image or the VM tests does not rebuild deskd.
{
  lib,
  stdenv,
  rustPlatform,
  nasm,
}:

let
  root = ../.;
  manifest = lib.importTOML ../supervisor/Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "deskd";
  inherit (manifest.package) version;

  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../supervisor
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # The native H.264 stream encodes with Cisco's openh264, which the `openh264` crate compiles
  # from source with the cc crate (the C++ compiler is stdenv's). On x86 it assembles the SIMD
  # kernels with nasm when nasm is on PATH and silently builds a slower encoder without it;
  # on aarch64 the kernels are .S files cc assembles itself.
  nativeBuildInputs = lib.optionals stdenv.hostPlatform.isx86 [ nasm ];

  cargoBuildFlags = [
    "--package"
    "deskd"
  ];

  # The build sandbox has no X server, no browser, no neko and no user namespaces,
  # which most integration tests in supervisor/tests need (they start real Xvfb,
  # Chromium, `unshare --pid`). The package runs the unit tests only; the flake check
  # `deskd-tests` runs the whole suite with Xvfb available, and the VM tests cover
  # the rest on real machines.
  cargoTestFlags = [
    "--package"
    "deskd"
    "--lib"
  ];

  meta = {
    description = manifest.package.description;
    license = lib.licenses.asl20;
    mainProgram = "deskd";
    platforms = lib.platforms.linux;
  };
}
