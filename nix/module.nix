# services.deskd: the streamed desktop as a hardened systemd service.
#
# deskd runs as an unprivileged system user and starts every service of its config
# (Xvfb, neko, the user's programs) as that same user. It logs to journald by itself
# (JOURNAL_STREAM is set by systemd) and does not speak sd_notify, hence Type=simple;
# readiness is `/readyz` on the HTTP port.
#
# The flake passes its packages in (see flake.nix: nixosModules.default); without them
# `package` and `nekoPackage` must be set.
{
  # system -> { deskd, neko }
  packagesFor ? null,
}:

{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.deskd;
  flakeDefault =
    attr:
    lib.optionalAttrs (packagesFor != null) {
      default = (packagesFor pkgs.stdenv.hostPlatform.system).${attr};
      defaultText = lib.literalMD "this flake's `${attr}` for the host's system";
    };
  settingsFormat = pkgs.formats.toml { };

  # Where systemd puts LoadCredential= files for this unit.
  credentialsDir = "/run/credentials/deskd.service";

  xvfb = import ./xvfb.nix pkgs;

  # Secret files stay out of the world-readable store: a string, not a Nix path (which
  # would be copied into the store), and an absolute path not under the store directory.
  secretFileOption =
    description:
    lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/run/secrets/deskd-token";
      inherit description;
    };
  secretFileAssertion = option: file: {
    assertion =
      file == null || (lib.hasPrefix "/" file && !lib.hasPrefix "${builtins.storeDir}/" file);
    message = "services.deskd.${option} must be an absolute path outside the Nix store (a string such as \"/run/secrets/deskd-token\"), not ${toString file}: every user can read a file in the store, and LoadCredential= needs an absolute path.";
  };

  # Ports for openFirewall, with deskd's defaults where the settings leave them out.
  lastPort = addr: lib.toInt (lib.last (lib.splitString ":" addr));
  httpPort = lastPort (cfg.settings.http.listen or "0.0.0.0:8080");
  nekoSettings = cfg.settings.neko or { };
  epr = if nekoSettings ? epr then map lib.toInt (lib.splitString "-" nekoSettings.epr) else null;
  udpPort = if epr != null then 0 else nekoSettings.udp_port or 59000;
  tcpmuxPort = nekoSettings.tcpmux or null;

  configFile = settingsFormat.generate "deskd.toml" cfg.settings;

  # `deskd check` at build time, on the config without the runtime-only secret paths.
  checkedConfig =
    let
      forCheck = cfg.settings // {
        http = removeAttrs (cfg.settings.http or { }) [
          "token_file"
          "view_token_file"
        ];
      };
    in
    pkgs.runCommand "deskd-config-checked"
      {
        nativeBuildInputs = [
          cfg.package
          xvfb
        ]
        ++ cfg.path;
      }
      ''
        mkdir empty
        deskd check -c ${settingsFormat.generate "deskd-check.toml" forCheck} --conf-d empty
        ln -s ${configFile} $out
      '';
in
{
  options.services.deskd = {
    enable = lib.mkEnableOption "deskd, a virtual Linux desktop streamed to browsers over WebRTC";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The deskd package.";
    }
    // flakeDefault "deskd";

    nekoPackage = lib.mkOption {
      type = lib.types.package;
      description = "The neko package deskd runs as its streaming backend (`[neko] binary`).";
    }
    // flakeDefault "neko";

    path = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [ ];
      example = lib.literalExpression "[ pkgs.xterm pkgs.openbox pkgs.firefox ]";
      description = ''
        Packages on the PATH of deskd and of every service it starts (window manager,
        terminal, browser...). Xvfb is always there.
      '';
    };

    settings = lib.mkOption {
      type = settingsFormat.type;
      default = { };
      example = lib.literalExpression ''
        {
          display.size = "1920x1080";
          neko.nat1to1 = [ "203.0.113.7" ];
          service = [
            { name = "wm"; command = [ "openbox" ]; after = [ "display" ]; }
          ];
        }
      '';
      description = ''
        deskd configuration (docs/config.md), rendered to TOML. The module sets
        `[display]`, `[http] listen` and `[neko] binary` by default; set `neko.nat1to1` to
        the address browsers reach this machine at (deskd's default is 127.0.0.1).
        Secrets do not belong here (the file is in the Nix store): use {option}`tokenFile`.
      '';
    };

    tokenFile = secretFileOption ''
      File with the control access token: an absolute path outside the Nix store, as a
      string (a Nix path such as `./token` would copy the secret into the world-readable
      store, so it is refused). Handed to the unit with `LoadCredential=` and read by deskd
      through `[http] token_file`. Without it deskd generates a token at each start and logs
      the URL to open, once.
    '';

    viewTokenFile = secretFileOption "Like {option}`tokenFile`, for the view-only token.";

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the HTTP port and neko's media ports (UDP, and TCP when `tcpmux` is set).";
    };

    user = lib.mkOption {
      type = lib.types.str;
      default = "deskd";
      description = "User deskd and all its services run as; created when left at the default.";
    };

    group = lib.mkOption {
      type = lib.types.str;
      default = "deskd";
      description = "Group of {option}`user`; created when left at the default.";
    };

    checkConfig = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Validate the rendered configuration with `deskd check` at build time.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      (secretFileAssertion "tokenFile" cfg.tokenFile)
      (secretFileAssertion "viewTokenFile" cfg.viewTokenFile)
    ];

    services.deskd.settings = {
      display = {
        number = lib.mkDefault 99;
        size = lib.mkDefault "1280x720";
      };
      http = {
        listen = lib.mkDefault "0.0.0.0:8080";
      }
      // lib.optionalAttrs (cfg.tokenFile != null) {
        token_file = "${credentialsDir}/token";
      }
      // lib.optionalAttrs (cfg.viewTokenFile != null) {
        view_token_file = "${credentialsDir}/view-token";
      };
      # Media ports and nat1to1 keep deskd's defaults (udp_port 59000, ["127.0.0.1"]):
      # setting udp_port here would clash with a user's `epr` in the same file.
      neko.binary = lib.mkDefault (lib.getExe cfg.nekoPackage);
    };

    users.users = lib.mkIf (cfg.user == "deskd") {
      deskd = {
        isSystemUser = true;
        group = cfg.group;
        home = "/var/lib/deskd";
        description = "deskd desktop";
      };
    };
    users.groups = lib.mkIf (cfg.group == "deskd") { deskd = { }; };

    # Drop-ins (`*.toml`) read after the main file, as in the image.
    environment.etc."deskd/conf.d/README".text = ''
      deskd reads *.toml here after its main configuration (services.deskd.settings).
    '';

    networking.firewall = lib.mkIf cfg.openFirewall {
      allowedTCPPorts = [ httpPort ] ++ lib.optional (tcpmuxPort != null) tcpmuxPort;
      allowedUDPPorts = lib.optional (udpPort != 0) udpPort;
      allowedUDPPortRanges = lib.optional (epr != null) {
        from = lib.head epr;
        to = lib.last epr;
      };
    };

    systemd.services.deskd = {
      description = "deskd streamed desktop";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      path = [ xvfb ] ++ cfg.path;

      environment = {
        HOME = "/var/lib/deskd";
        LANG = "C.UTF-8";
      };

      serviceConfig = {
        Type = "simple";
        ExecStart = "${lib.getExe cfg.package} run -c ${
          if cfg.checkConfig then checkedConfig else configFile
        } --conf-d /etc/deskd/conf.d";
        User = cfg.user;
        Group = cfg.group;

        # deskd stops its services in reverse order with their own signals and
        # timeouts, then exits 0: it alone gets SIGTERM, the rest of the cgroup is
        # killed only if it outlives TimeoutStopSec.
        KillSignal = "SIGTERM";
        KillMode = "mixed";
        TimeoutStopSec = "30s";
        Restart = "on-failure";
        RestartSec = "2s";

        LoadCredential =
          lib.optional (cfg.tokenFile != null) "token:${cfg.tokenFile}"
          ++ lib.optional (cfg.viewTokenFile != null) "view-token:${cfg.viewTokenFile}";

        StateDirectory = "deskd";
        StateDirectoryMode = "0750";
        RuntimeDirectory = "deskd";
        WorkingDirectory = "/var/lib/deskd";
        UMask = "0077";

        # Hardening. Xvfb's socket lives in /tmp/.X11-unix: a private /tmp keeps the
        # display to this unit (the agent API and neko run inside it).
        NoNewPrivileges = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectKernelLogs = true;
        ProtectKernelModules = true;
        ProtectKernelTunables = true;
        ProtectControlGroups = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
          "AF_NETLINK"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" ];
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        # GStreamer's orc compiles code at run time, so MemoryDenyWriteExecute stays off.
      };
    };
  };
}
