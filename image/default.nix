# mkImage: the deskd desktop as an OCI image (dockerTools.streamLayeredImage).
#
# The result is a script that writes the image tarball to stdout, so no large tarball
# lands in the store:  $(nix build .#image --print-out-paths) | docker load
#
# Derived images (flake output lib.mkImage) add packages, deskd settings (a Nix attrset
# rendered to TOML and merged over the default), services, a name and tag, and may bring
# their own neko package.
{
  pkgs,
  deskd,
  neko,
  # For the OCI labels; the flake passes both.
  revision,
  source,
}:

let
  defaultNeko = neko;
in
{
  name ? "deskd",
  tag ? deskd.version,
  # Packages put on the image's PATH (/bin) and into /share (e.g. a browser).
  extraPackages ? [ ],
  # deskd settings merged (lib.recursiveUpdate) over the default configuration.
  settings ? { },
  # Extra [[service]] tables appended to the default ones, e.g.
  # { name = "firefox"; command = [ "firefox" ]; after = [ "window-manager" ]; }
  services ? [ ],
  # false: no window manager or terminal, only display, neko and PulseAudio.
  desktop ? true,
  # A neko package of your own (its bin/neko is used).
  neko ? defaultNeko,
  # Extra OCI labels, merged over the defaults.
  labels ? { },
}:

let
  inherit (pkgs) lib;

  nekoPkg = neko;

  uid = 1000;
  user = "desk";
  home = "/home/${user}";

  fontsConf = pkgs.makeFontsConf {
    fontDirectories = [ pkgs.dejavu_fonts ];
  };

  # Everything derived from the display number (the window manager's readiness probe,
  # DISPLAY for `docker exec`) follows a derived image's `display.number`.
  displayNumber = settings.display.number or 99;

  # deskd writes its control token here for `deskd ctl` (ctl.rs: DEFAULT_TOKEN_FILE is
  # /run/deskd/token); it must be the user's own directory.
  runtimeDir = "/run/deskd";

  xvfb = import ../nix/xvfb.nix pkgs;

  defaults = import ./settings.nix {
    display = displayNumber;
    neko = lib.getExe nekoPkg;
    pulseaudio = "${pkgs.pulseaudio}/bin/pulseaudio";
    windowManager = "${pkgs.openbox}/bin/openbox";
    terminal = "${pkgs.xterm}/bin/xterm";
    terminalArgs = [
      "-fa"
      "DejaVu Sans Mono"
      "-fs"
      "11"
    ];
    pulseScript = "${./default.pa}";
  };

  baseServices =
    if desktop then
      defaults.service
    else
      builtins.filter (s: s.name == "pulseaudio") defaults.service;

  merged = lib.recursiveUpdate (removeAttrs defaults [ "service" ]) settings;

  finalSettings = merged // {
    service = baseServices ++ (merged.service or [ ]) ++ services;
  };

  configFile = (pkgs.formats.toml { }).generate "deskd.toml" finalSettings;

  # The ports to expose, from the settings (deskd's defaults where they are not set).
  httpPort = lib.toInt (lib.last (lib.splitString ":" (finalSettings.http.listen or "0.0.0.0:8080")));
  nekoSettings = finalSettings.neko or { };
  epr =
    if nekoSettings ? epr then map lib.toInt (lib.splitString "-" nekoSettings.epr) else null;
  udpPorts =
    if epr != null then
      lib.range (lib.head epr) (lib.last epr)
    else
      lib.filter (p: p != 0) [ (nekoSettings.udp_port or 59000) ];
  tcpPorts = [ httpPort ] ++ lib.optional (nekoSettings ? tcpmux) nekoSettings.tcpmux;

  # /etc/shells: xterm validates $SHELL and the passwd shell against it (falling back to
  # /bin/sh), so the terminal gets bash as the user's shell says.
  etc = pkgs.runCommand "deskd-image-etc" { } ''
    install -Dm644 ${configFile} $out/etc/deskd/deskd.toml
    printf '%s\n' /bin/bash /bin/sh > $out/etc/shells
  '';

  nss = pkgs.dockerTools.fakeNss.override {
    extraPasswdLines = [ "${user}:x:${toString uid}:${toString uid}:desktop user:${home}:/bin/bash" ];
    extraGroupLines = [ "${user}:x:${toString uid}:" ];
  };

  rootEnv = pkgs.buildEnv {
    name = "deskd-image-root";
    paths = [
      deskd
      nekoPkg
      xvfb
      pkgs.pulseaudio
      pkgs.openbox
      pkgs.xterm
      pkgs.xdotool
      pkgs.xclip
      pkgs.dejavu_fonts
      pkgs.vanilla-dmz # cursor theme
      pkgs.bashInteractive
      pkgs.coreutils
      pkgs.curlMinimal # the healthcheck
    ]
    ++ extraPackages;
    pathsToLink = [
      "/bin"
      "/share"
    ];
  };

  seconds = s: s * 1000000000;

  contents = [
    rootEnv
    nss
    etc
    # For programs added FROM this image: `#!/usr/bin/env` scripts, and the CA bundle at
    # /etc/ssl/certs (browsers, curl over HTTPS).
    pkgs.dockerTools.usrBinEnv
    pkgs.dockerTools.caCertificates
  ];

  # What the image holds: the closure of its contents and of the store paths its config
  # names. (The closure of the stream script itself also has the Python that writes the
  # tarball, which is not in the image.)
  closureRoots = contents ++ [ fontsConf ];

  # The image's size and its largest store paths (flake check `image-closure`). Where
  # nixpkgs has the Xvfb-only package, the full Xorg server must not be in the image.
  closureReport =
    pkgs.runCommand "${name}-closure"
      {
        __structuredAttrs = true;
        exportReferencesGraph.closure = closureRoots;
        nativeBuildInputs = [ pkgs.jq ];
        forbidden = lib.optionalString (pkgs ? xvfb) "xorg-server";
      }
      (builtins.readFile ./closure-report.sh);
in
pkgs.dockerTools.streamLayeredImage {
  inherit name tag contents;

  # Run under fakeroot: ownership and modes end up in the image as written here.
  fakeRootCommands = ''
    mkdir -p ./tmp/.X11-unix ./tmp/runtime-${user} .${home} ./etc/deskd/conf.d .${runtimeDir}
    chmod 1777 ./tmp ./tmp/.X11-unix
    chown ${toString uid}:${toString uid} .${home} ./tmp/runtime-${user} .${runtimeDir}
    chmod 0700 ./tmp/runtime-${user} .${runtimeDir}
  '';

  config = {
    # deskd is PID 1 and runs every service as the non-root user.
    Entrypoint = [
      "${deskd}/bin/deskd"
      "run"
    ];
    # `docker run IMAGE -- CMD ARGS` makes CMD deskd's main program.
    Cmd = [ ];
    User = "${toString uid}:${toString uid}";
    WorkingDir = home;
    Env = [
      "PATH=/bin"
      "LANG=C.UTF-8"
      "HOME=${home}"
      "USER=${user}"
      "SHELL=/bin/bash"
      "DISPLAY=:${toString finalSettings.display.number}"
      "XDG_RUNTIME_DIR=/tmp/runtime-${user}"
      "XDG_DATA_DIRS=/share"
      "XCURSOR_PATH=/share/icons"
      "XCURSOR_THEME=Vanilla-DMZ"
      "FONTCONFIG_FILE=${fontsConf}"
      "PULSE_SERVER=unix:/tmp/pulseaudio.socket"
    ];
    ExposedPorts = lib.listToAttrs (
      map (p: lib.nameValuePair "${toString p}/tcp" { }) tcpPorts
      ++ map (p: lib.nameValuePair "${toString p}/udp" { }) udpPorts
    );
    StopSignal = "SIGTERM";
    # Docker honours this (docker inspect .State.Health); OCI-format podman ignores it.
    Healthcheck = {
      Test = [
        "CMD"
        "/bin/curl"
        "-fsS"
        "-o"
        "/dev/null"
        "http://127.0.0.1:${toString httpPort}/healthz"
      ];
      Interval = seconds 10;
      Timeout = seconds 5;
      StartPeriod = seconds 10;
      Retries = 3;
    };
    Labels = {
      "org.opencontainers.image.title" = name;
      "org.opencontainers.image.description" =
        "A virtual Linux desktop streamed to the browser over WebRTC, supervised by deskd";
      "org.opencontainers.image.source" = source;
      "org.opencontainers.image.licenses" = "Apache-2.0";
      "org.opencontainers.image.version" = deskd.version;
      "org.opencontainers.image.revision" = revision;
    }
    // labels;
  };

  passthru = {
    inherit configFile finalSettings closureReport;
    neko = nekoPkg;
  };
}
