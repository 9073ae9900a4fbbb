# VM test `stream`: services.deskd on a server, headless Chromium on a client.
#
# The client opens the viewer with the token and waits for live video with decoded
# frames; then it clicks and types into the page, and the server's X server must have
# received both (the typed command runs in the desktop's terminal; the agent API reports
# where the pointer went). Also: /readyz, the view-only token (watches, cannot type),
# and a wrong token refused.
{
  pkgs,
  module,
}:

let
  common = import ./common.nix { inherit pkgs; };
  inherit (common) controlToken viewToken;
  # WebRTC forced: this test is about neko's path (the page would pick deskd's own stream
  # first where it has WebCodecs).
  url = token: "http://server:8080/?token=${token}&transport=webrtc";
in
pkgs.testers.runNixOSTest {
  name = "deskd-stream";

  nodes = {
    server =
      { config, pkgs, ... }:
      {
        imports = [ module ];
        virtualisation.memorySize = 2048;

        environment.etc."deskd-test/token".text = controlToken;
        environment.etc."deskd-test/view-token".text = viewToken;

        services.deskd = {
          enable = true;
          openFirewall = true;
          tokenFile = "/etc/deskd-test/token";
          viewTokenFile = "/etc/deskd-test/view-token";
          path = [
            pkgs.openbox
            pkgs.xterm
          ];
          settings = {
            # pion opens no media sockets on loopback: advertise the address the
            # client reaches this machine at.
            neko.nat1to1 = [ config.networking.primaryIPAddress ];
            service = [
              {
                name = "window-manager";
                command = [ "openbox" ];
                after = [ "display" ];
              }
              {
                # The shell given: the system user's login shell is nologin (systemd
                # passes it as $SHELL), which xterm would run and exit at once.
                name = "terminal";
                command = [
                  "xterm"
                  "-e"
                  "${pkgs.bashInteractive}/bin/bash"
                ];
                after = [ "window-manager" ];
              }
            ];
          };
        };
        environment.systemPackages = [
          pkgs.curl
          pkgs.jq
        ];
      };

    client = common.client;
  };

  testScript = ''
    import json

    auth = "-H 'Authorization: Bearer ${controlToken}'"

    def pointer(display: dict) -> tuple[int, int]:
        p = display.get("pointer", display)
        return int(p["x"]), int(p["y"])

    start_all()

    with subtest("deskd starts its services in order and reports ready"):
        server.wait_for_unit("deskd.service")
        server.wait_for_open_port(8080)
        server.succeed("curl --fail -s http://127.0.0.1:8080/healthz")
        server.wait_until_succeeds("curl --fail -s http://127.0.0.1:8080/readyz", timeout=120)
        server.fail("journalctl -u deskd.service | grep -F '${controlToken}'")
        # /readyz speaks for the critical services only: wait for all of them, then every
        # one must have come up on its first start (none restarted).
        server.wait_until_succeeds(
            f"curl --fail -s {auth} http://127.0.0.1:8080/api/services"
            " | jq -e '.services | length > 0 and all(.state == \"ready\")'",
            timeout=120,
        )
        status = json.loads(server.succeed(f"curl --fail -s {auth} http://127.0.0.1:8080/api/services"))
        states = {s["name"]: (s["state"], s["restarts"]) for s in status["services"]}
        for name in ("display", "neko", "window-manager", "terminal"):
            assert states.get(name) == ("ready", 0), f"{name}: {states.get(name)} in {states}"

    with subtest("a wrong token is refused, the right one accepted"):
        client.wait_for_unit("multi-user.target")
        client.succeed(
            "test \"$(curl -s -o /dev/null -w '%{http_code}' "
            "-H 'Authorization: Bearer wrong' http://server:8080/api/display)\" = 401"
        )
        client.succeed(
            "test \"$(curl -s -o /dev/null -w '%{http_code}' http://server:8080/api/display)\" = 401"
        )
        client.succeed(f"curl --fail -s {auth} http://server:8080/api/display")

    with subtest("view-only token: live video, typing goes nowhere"):
        out = client.succeed(
            "${common.browse {
              url = url viewToken;
              click = true;
              type = "touch typed-by-viewer";
              expect = "view";
            }}"
        )
        print(out)

    with subtest("control token: live video, click and keys reach the X server"):
        out = client.succeed(
            "${common.browse {
              url = url controlToken;
              click = true;
              type = "touch typed-by-browser";
              expect = "control";
            }}"
        )
        state = json.loads(out.strip().splitlines()[-1])
        assert state["status"] == "live" and state["isHost"], state
        server.wait_until_succeeds("test -f /var/lib/deskd/typed-by-browser", timeout=60)
        # The viewer's keys were sent before these and were processed by now.
        server.fail("test -e /var/lib/deskd/typed-by-viewer")
        display = json.loads(server.succeed(f"curl --fail -s {auth} http://127.0.0.1:8080/api/display"))
        x, y = pointer(display)
        assert abs(x - 640) <= 24 and abs(y - 360) <= 24, f"pointer at {(x, y)}, clicked the middle"

    with subtest("a clean stop"):
        server.succeed("systemctl stop deskd.service")
        server.succeed("test \"$(systemctl show -p ExecMainStatus --value deskd.service)\" = 0")
        server.succeed("test \"$(systemctl show -p Result --value deskd.service)\" = success")
        server.fail("pgrep -u deskd")
  '';
}
