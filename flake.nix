{
  description = "deskd: a virtual Linux desktop streamed to the browser over WebRTC, with an agent API";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The one place the project's home is named (image label, docs).
      source = "https://github.com/deskd/deskd";
      revision = self.rev or self.dirtyRev or "unknown";

      # mkImage for a package set, with this flake's deskd and neko as defaults.
      mkImageWith =
        pkgs:
        import ./image {
          inherit pkgs revision source;
          deskd = pkgs.callPackage ./nix/deskd.nix { };
          neko = pkgs.callPackage ./image/neko.nix { };
        };
    in
    {
      overlays.default = final: _prev: {
        deskd = final.callPackage ./nix/deskd.nix { };
        deskd-neko = final.callPackage ./image/neko.nix { };
      };

      packages = forAllSystems (
        pkgs:
        let
          deskd = pkgs.callPackage ./nix/deskd.nix { };
        in
        {
          inherit deskd;
          neko = pkgs.callPackage ./image/neko.nix { };
          image = mkImageWith pkgs { };
          default = deskd;
        }
      );

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.deskd;
          meta.description = "deskd (e.g. `nix run . -- run -c deskd.toml`)";
        };
      });

      # services.deskd; the packages default to this flake's for the host's system.
      nixosModules.default = import ./nix/module.nix {
        packagesFor = system: self.packages.${system};
      };

      # lib.mkImage { pkgs = nixpkgs.legacyPackages.x86_64-linux; name = "my-desktop";
      #   extraPackages = [ pkgs.firefox ];
      #   services = [ { name = "firefox"; command = [ "firefox" ]; after = [ "window-manager" ]; } ];
      #   settings = { display.size = "1920x1080"; }; neko = myNeko; }
      lib.mkImage = { pkgs, ... }@args: mkImageWith pkgs (removeAttrs args [ "pkgs" ]);

      checks = forAllSystems (
        pkgs:
        let
          own = self.packages.${pkgs.stdenv.hostPlatform.system};
        in
        {
          inherit (own) deskd;

          # The whole Rust test suite with an X server, a window manager, a terminal and node
          # at hand. Tests that need what the sandbox cannot give (user namespaces, a real
          # neko) skip with a printed reason as they do elsewhere; the browser tests look for
          # Chromium at its Debian path, so they are skipped here by name: the VM tests drive
          # Chromium instead. So is the test of a service running as `nobody`: it needs root
          # (the sandbox builds as an unprivileged user) and Debian's passwd entry (home
          # /nonexistent). The sandbox starts with no locale: the agent types non-ASCII text
          # into xterm, which needs a UTF-8 one (glibc in nixpkgs ships C.UTF-8).
          deskd-tests = own.deskd.overrideAttrs (old: {
            pname = "deskd-tests";
            cargoTestFlags = [
              "--package"
              "deskd"
            ];
            checkFlags = [
              "--skip"
              "page_streams_and_sends_input_over_a_real_peer_connection"
              "--skip"
              "deskd_page_reaches_neko_through_the_relay_in_chromium"
              "--skip"
              "service_runs_as_its_user_with_its_env"
            ];
            nativeCheckInputs = (old.nativeCheckInputs or [ ]) ++ [
              (import ./nix/xvfb.nix pkgs)
              (pkgs.xdpyinfo or pkgs.xorg.xdpyinfo) # an X client in display_service
              pkgs.xdotool
              pkgs.xclip
              (pkgs.xrandr or pkgs.xorg.xrandr) # stream_ws: a RandR resize of the screen
              pkgs.openbox # agent_desktop: the window manager
              pkgs.xterm # agent_desktop: the terminal the agent types into
              pkgs.util-linux
              pkgs.nodejs
              pkgs.python3 # service commands and the orphan-storm script of the tests
              # relay_e2e runs neko's feed pipeline (tcpclientsrc ! h264parse) in gst-launch-1.0.
              (pkgs.gst_all_1.gstreamer.bin or pkgs.gst_all_1.gstreamer.dev)
            ];
            env = (old.env or { }) // {
              LANG = "C.UTF-8";
              LC_ALL = "C.UTF-8";
              # openbox draws its titles with pango: give fontconfig fonts, as the image does.
              FONTCONFIG_FILE = "${pkgs.makeFontsConf { fontDirectories = [ pkgs.dejavu_fonts ]; }}";
              # The plugins of that pipeline: core elements, tcp (base), videoparsersbad (bad).
              GST_PLUGIN_SYSTEM_PATH_1_0 = lib.makeSearchPathOutput "lib" "lib/gstreamer-1.0" (
                with pkgs.gst_all_1;
                [
                  gstreamer
                  gst-plugins-base
                  gst-plugins-bad
                ]
              );
            };
            installPhase = "touch $out";
          });

          # What the image holds: its size and the largest store paths, as a build log and
          # $out; fails if the full Xorg server got in where nixpkgs has the Xvfb-only build.
          image-closure = own.image.closureReport;

          stream = import ./nixos-tests/stream.nix {
            inherit pkgs;
            module = self.nixosModules.default;
          };

          image = import ./nixos-tests/image.nix {
            inherit pkgs;
            inherit (own) image;
            # A derived image on another display: everything derived from the number follows.
            derived = mkImageWith pkgs {
              name = "deskd-derived";
              settings.display.number = 42;
            };
          };
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.deskd ];
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            rust-analyzer
            # What the tests and benchmarks run.
            (import ./nix/xvfb.nix pkgs)
            (pkgs.xdpyinfo or xorg.xdpyinfo)
            (pkgs.xwininfo or xorg.xwininfo)
            xdotool
            xclip
            chromium
            chromedriver
            openbox # scripts/run-desktop, examples/desktop.toml
            xterm
            nodejs # the viewer's JavaScript unit tests
            iproute2 # the browser tests' private network namespace
            # Test services and scripts; PyYAML for scripts/check-nix.
            (python3.withPackages (ps: [ ps.pyyaml ]))
            pulseaudio
            tini
            dumb-init
            imagemagick
            scrot
            python3Packages.websockify
            nginx
            netcat-openbsd
            util-linux
            # The image pin and the offline checks.
            nix-prefetch-docker
            skopeo
            jq
          ];
        };
      });
    };
}
