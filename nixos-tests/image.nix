# VM test `image`: packages.image loaded into Docker and run with its ports published;
# `deskd ctl` through `docker exec` with the token deskd wrote to /run/deskd; headless
# Chromium on a second machine reaches live video and drives the desktop; `docker stop`
# then ends deskd with exit code 0 inside the grace period. Then a derived image on
# another display number: every service, the window manager included, comes up at once.
{
  pkgs,
  image,
  # lib.mkImage { settings.display.number = 42; ... }
  derived,
}:

let
  common = import ./common.nix { inherit pkgs; };
  inherit (common) controlToken viewToken;
  ref = "${image.imageName}:${image.imageTag}";
  derivedRef = "${derived.imageName}:${derived.imageTag}";
  derivedDisplay = derived.finalSettings.display.number;
  grace = 20;
in
pkgs.testers.runNixOSTest {
  name = "deskd-image";

  nodes = {
    desktop =
      { ... }:
      {
        virtualisation = {
          memorySize = 3072;
          diskSize = 8192;
          docker.enable = true;
        };
        networking.firewall.allowedTCPPorts = [ 8080 ];
        networking.firewall.allowedUDPPorts = [ 59000 ];
        environment.systemPackages = [
          pkgs.curl
          pkgs.jq
          pkgs.procps
        ];
      };

    client = common.client;
  };

  testScript =
    { nodes, ... }:
    ''
      import json
      import time

      name = "deskd"
      ip = "${nodes.desktop.networking.primaryIPAddress}"
      api = "curl --fail -s -H 'Authorization: Bearer ${controlToken}' http://127.0.0.1:8080/api"
      # The first 8 bytes of a command's output as hex, read on the VM (the image has no od).
      png_magic = "89504e470d0a1a0a"
      head8 = " | head -c 8 | od -An -tx1 | tr -d ' \\n'"


      def services_up_at_first_start(container: str) -> None:
          # Every service of the desktop ready, none restarted: a probe that never succeeds
          # (e.g. the window manager's on the wrong display) or a slow start shows here.
          desktop.wait_until_succeeds("curl --fail -s http://127.0.0.1:8080/readyz", timeout=180)
          desktop.wait_until_succeeds(
              f"test \"$(docker inspect -f '{{{{.State.Health.Status}}}}' {container})\" = healthy",
              timeout=120,
          )
          # /readyz speaks for the critical services only: wait for all of them first.
          desktop.wait_until_succeeds(
              f"{api}/services | jq -e '.services | length > 0 and all(.state == \"ready\")'",
              timeout=120,
          )
          status = json.loads(desktop.succeed(f"{api}/services"))
          states = {s["name"]: (s["state"], s["restarts"]) for s in status["services"]}
          for service in ("display", "neko", "pulseaudio", "window-manager", "terminal"):
              assert states.get(service) == ("ready", 0), f"{service}: {states.get(service)} in {states}"


      def stop_within_grace(container: str) -> None:
          began = time.monotonic()
          desktop.succeed(f"docker stop -t ${toString grace} {container}")
          took = time.monotonic() - began
          assert took < ${toString grace}, f"docker stop took {took:.1f}s: deskd was killed, not stopped"
          desktop.succeed(f"test \"$(docker inspect -f '{{{{.State.ExitCode}}}}' {container})\" = 0")
          desktop.succeed(f"test \"$(docker inspect -f '{{{{.State.OOMKilled}}}}' {container})\" = false")


      start_all()
      desktop.wait_for_unit("docker.service")

      with subtest("the image loads and has the promised shape"):
          desktop.succeed("${image} | docker load")
          cfg = "docker image inspect ${ref} --format"
          desktop.succeed(f"test \"$({cfg} '{{{{.Config.User}}}}')\" = 1000:1000")
          desktop.succeed(f"test \"$({cfg} '{{{{.Config.StopSignal}}}}')\" = SIGTERM")
          desktop.succeed(f"{cfg} '{{{{json .Config.ExposedPorts}}}}' | grep -F 8080/tcp")
          desktop.succeed(f"{cfg} '{{{{json .Config.ExposedPorts}}}}' | grep -F 59000/udp")
          desktop.succeed(
              f"{cfg} '{{{{index .Config.Labels \"org.opencontainers.image.licenses\"}}}}' | grep -Fx Apache-2.0"
          )

      with subtest("the container runs deskd as PID 1 with the desktop"):
          # A conf.d drop-in, as a derived image or a user would add one: remote browsers
          # need the host's address in nat1to1.
          desktop.succeed("mkdir -p /srv/deskd-conf.d")
          desktop.succeed(
              f"printf '[neko]\\nnat1to1 = [\"{ip}\"]\\n' > /srv/deskd-conf.d/50-network.toml"
          )
          desktop.succeed(
              f"docker run -d --name {name} -p 8080:8080 -p 59000:59000/udp "
              "-e DESKD_TOKEN=${controlToken} -e DESKD_VIEW_TOKEN=${viewToken} "
              "-v /srv/deskd-conf.d:/etc/deskd/conf.d:ro ${ref}"
          )
          services_up_at_first_start(name)
          desktop.succeed(f"test \"$(docker exec {name} id -u)\" = 1000")
          desktop.succeed(f"test \"$(docker exec {name} stat -c %a /tmp)\" = 1777")
          desktop.succeed(f"test \"$(docker exec {name} cat /proc/1/comm)\" = deskd")
          desktop.succeed(f"docker exec {name} deskd check -c /etc/deskd/deskd.toml")

      with subtest("a screenshot through the agent API"):
          magic = desktop.succeed(f"{api}/screenshot{head8}")
          assert magic == png_magic, f"GET /api/screenshot gave no PNG: {magic!r}"

      with subtest("deskd ctl through docker exec, with the token deskd wrote to /run/deskd"):
          desktop.succeed(f"test \"$(docker exec {name} stat -c '%u %a' /run/deskd)\" = '1000 700'")
          desktop.succeed(f"docker exec {name} test -s /run/deskd/token")
          desktop.fail(f"docker logs {name} 2>&1 | grep -F 'control token file not written'")
          # env -u: the container's DESKD_TOKEN must not be what lets deskd ctl in.
          magic = desktop.succeed(f"docker exec {name} env -u DESKD_TOKEN deskd ctl screenshot -o -{head8}")
          assert magic == png_magic, f"deskd ctl screenshot gave no PNG: {magic!r}"

      with subtest("Chromium on another machine sees live video and drives the desktop"):
          client.wait_for_unit("multi-user.target")
          client.succeed(
              "test \"$(curl -s -o /dev/null -w '%{http_code}' "
              f"-H 'Authorization: Bearer wrong' http://{ip}:8080/api/display)\" = 401"
          )
          out = client.succeed(
              "${common.browse {
                url = "http://desktop:8080/?token=${controlToken}";
                click = true;
                type = "touch typed-through-image";
                expect = "control";
              }}"
          )
          print(out)
          desktop.wait_until_succeeds(
              f"docker exec {name} test -f /home/desk/typed-through-image", timeout=60
          )

      with subtest("docker stop: deskd exits 0 within the grace period, nothing left"):
          stop_within_grace(name)
          # The driver runs every command as `timeout 900 bash -c '...'`, whose own command
          # line holds the pgrep pattern: `[X]vfb` matches "Xvfb" but not itself, where a
          # plain `pgrep -f Xvfb` would always find that shell and this could never pass.
          # -f rather than -x: a wrapped program's process name is not its command's name.
          for program in ("Xvfb", "neko", "pulseaudio", "openbox", "xterm"):
              desktop.fail(f"pgrep -f '[{program[0]}]{program[1:]}'")

      with subtest("a derived image on display :${toString derivedDisplay}: everything follows the number"):
          desktop.succeed("${derived} | docker load")
          desktop.succeed(
              "docker run -d --name derived -p 8080:8080 -e DESKD_TOKEN=${controlToken} ${derivedRef}"
          )
          services_up_at_first_start("derived")
          desktop.succeed("test \"$(docker exec derived printenv DISPLAY)\" = :${toString derivedDisplay}")
          desktop.succeed("docker exec derived test -S /tmp/.X11-unix/X${toString derivedDisplay}")
          stop_within_grace("derived")
    '';
}
