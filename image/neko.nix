# neko, the WebRTC streamer, taken as a binary from neko's own base image pinned by digest.
#
# The binary is built for Debian: its ELF interpreter and libraries are patched to
# store paths (autoPatchelfHook) and a wrapper sets the GStreamer plugin path and the
# tools neko calls (xclip for the clipboard, setxkbmap for keyboard maps, xdotool).
#
# neko initialises GStreamer before it listens, and a GStreamer without a plugin registry
# loads every plugin of its path to write one (in $HOME/.cache, lost with the container):
# hundreds of libraries read from the store on each first start, which in a VM whose store
# is a shared mount can outlast deskd's readiness timeout for neko. So the registry is built
# here, once, and the wrapper points GST_REGISTRY at it. The plugins' store paths, sizes
# and mtimes never change, so GStreamer finds every plugin cached and loads none at start
# (a plugin added through the environment is still scanned; the read-only file then simply
# stays as it is).
#
# The pin (digest and one hash per architecture) lives in ./neko-base.json and is
# refreshed by ./update-neko-base.sh with nix-prefetch-docker. A hash that is still
# `null` there builds with lib.fakeHash: the first build then fails with the real hash
# printed ("got: sha256-..."), which is what the script writes.
{
  lib,
  stdenv,
  dockerTools,
  autoPatchelfHook,
  makeWrapper,
  jq,
  zstd,
  glib,
  gtk3,
  cairo,
  pango,
  gdk-pixbuf,
  atk,
  harfbuzz,
  zlib,
  libxcvt,
  gst_all_1,
  xclip,
  xdotool,
  # nixpkgs moved the X libraries out of `xorg` (25.11); fall back for older sets.
  xorg ? { },
  libx11 ? xorg.libX11,
  libxrandr ? xorg.libXrandr,
  libxtst ? xorg.libXtst,
  libxfixes ? xorg.libXfixes,
  libxi ? xorg.libXi,
  setxkbmap ? xorg.setxkbmap,
  pin ? lib.importJSON ./neko-base.json,
}:

let
  # Docker's names for the architectures this flake builds for.
  arch =
    {
      x86_64-linux = "amd64";
      aarch64-linux = "arm64";
    }
    .${stdenv.hostPlatform.system}
      or (throw "neko: no neko base image for ${stdenv.hostPlatform.system}");

  pinnedHash = pin.hash.${arch} or null;

  hash =
    if pinnedHash == null then
      lib.warn
        "neko: image/neko-base.json has no hash for ${arch} yet; run image/update-neko-base.sh, or paste the hash this build prints"
        lib.fakeHash
    else
      pinnedHash;

  baseImage = dockerTools.pullImage {
    inherit (pin) imageName imageDigest finalImageTag;
    finalImageName = pin.imageName;
    os = "linux";
    inherit arch hash;
  };

  gstPlugins = with gst_all_1; [
    gstreamer
    gst-plugins-base
    gst-plugins-good # ximagesrc, vpx, pulsesrc
    gst-plugins-bad
    gst-plugins-ugly
  ];
  gstPluginPath = lib.makeSearchPathOutput "lib" "lib/gstreamer-1.0" gstPlugins;
  # gst-inspect-1.0 of the GStreamer neko links: the registry format is that version's.
  gstInspect = "${gst_all_1.gstreamer.bin or gst_all_1.gstreamer.dev}/bin/gst-inspect-1.0";
in
stdenv.mkDerivation {
  pname = "neko";
  # The image is pinned by digest, not by release; the digest names the version.
  version = "base-" + lib.substring 7 12 pin.imageDigest;

  src = baseImage;

  nativeBuildInputs = [
    autoPatchelfHook
    makeWrapper
    jq
    zstd
  ];

  # What neko links (its cgo flags: gtk+-3.0, gstreamer-1.0, gstreamer-app-1.0,
  # gstreamer-video-1.0, -lX11 -lXrandr -lXtst -lXfixes -lXi -lxcvt). gtk+-3.0's
  # pkg-config libraries are all DT_NEEDED of the Debian build, so they are named here
  # rather than trusted to come along with gtk3.
  buildInputs = [
    glib
    gtk3 # neko's drag-and-drop upload window
    cairo
    pango
    harfbuzz
    atk
    gdk-pixbuf
    zlib
    libxcvt
    libx11
    libxrandr
    libxtst
    libxfixes
    libxi
  ]
  ++ gstPlugins;

  # pullImage yields a docker-archive: manifest.json lists the layer tarballs from the
  # bottom up. Unpack /usr/bin/neko (neko's Dockerfile.tmpl: COPY --from=server
  # /src/bin/neko /usr/bin/neko) from each layer that has it; the topmost one wins.
  # Both spellings of the member name: layer tarballs may or may not prefix "./".
  unpackPhase = ''
    runHook preUnpack
    mkdir archive rootfs
    tar -xf "$src" -C archive
    for layer in $(jq -r '.[0].Layers[]' archive/manifest.json); do
      tar -xf "archive/$layer" -C rootfs usr/bin/neko ./usr/bin/neko 2>/dev/null || true
    done
    if [ ! -f rootfs/usr/bin/neko ]; then
      echo "neko: no usr/bin/neko in any layer of ${pin.imageName}@${pin.imageDigest}" >&2
      exit 1
    fi
    runHook postUnpack
  '';

  dontConfigure = true;
  dontBuild = true;

  installPhase = ''
    runHook preInstall
    install -Dm755 rootfs/usr/bin/neko "$out/libexec/neko/neko"
    # The plugin registry (see the top of this file), from exactly the wrapper's plugin path.
    registry="$out/lib/neko/gstreamer-registry.bin"
    mkdir -p "$(dirname "$registry")"
    HOME="$TMPDIR" GST_REGISTRY="$registry" \
      GST_PLUGIN_SYSTEM_PATH_1_0="${gstPluginPath}" ${gstInspect} >/dev/null
    test -s "$registry"
    makeWrapper "$out/libexec/neko/neko" "$out/bin/neko" \
      --prefix GST_PLUGIN_SYSTEM_PATH_1_0 : "${gstPluginPath}" \
      --set GST_REGISTRY "$registry" \
      --prefix PATH : "${
        lib.makeBinPath [
          xclip
          xdotool
          setxkbmap
        ]
      }"
    runHook postInstall
  '';

  # A Go binary: stripping gains little and has broken Go binaries before.
  dontStrip = true;

  passthru = {
    inherit baseImage pin;
  };

  meta = {
    description = "neko WebRTC desktop streamer (binary from ${pin.imageName})";
    homepage = "https://github.com/m1k1o/neko";
    license = lib.licenses.asl20;
    sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
    mainProgram = "neko";
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
    ];
  };
}
