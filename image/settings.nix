# The image's default deskd configuration, as plain data: a desktop a first-time user
# can see and use (Xvfb, neko, PulseAudio with the null sink neko records from, a window
# manager and a terminal).
#
# Deliberately free of nixpkgs: programs come in as strings, so scripts/check-nix can
# render this file offline with stand-in programs and run `deskd check` on it.
{
  # Absolute paths of the programs (store paths in the image).
  neko,
  pulseaudio,
  windowManager,
  terminal,
  # PulseAudio script that creates the sinks (./default.pa).
  pulseScript,
  # Extra xterm arguments (font selection needs fontconfig; empty for a bare check).
  terminalArgs ? [ ],
  display ? 99,
  size ? "1280x720",
}:
{
  display = {
    number = display;
    inherit size;
    depth = 24;
  };

  http = {
    listen = "0.0.0.0:8080";
  };

  # Media: deskd's default, one UDP port (udp_port = 59000), is not written here so that
  # settings choosing `epr` instead do not clash with it in the same file.
  neko = {
    binary = neko;
    # Right for a browser on the Docker host (`-p 59000:59000/udp`); remote browsers
    # need the host's reachable address here (docs/nix.md, networking).
    nat1to1 = [ "127.0.0.1" ];
    audio = true;
  };

  service = [
    {
      # neko captures `audio_output.monitor` through $PULSE_SERVER (set in the image).
      name = "pulseaudio";
      command = [
        pulseaudio
        "--daemonize=no"
        "--use-pid-file=no"
        "--exit-idle-time=-1"
        "--disallow-exit"
        "--log-target=stderr"
        "-n"
        "-F"
        pulseScript
      ];
      # the socket opens once default.pa has made the null sinks; neko (audio = true) waits
      # for this service to be ready
      ready.unix = "/tmp/pulseaudio.socket";
      restart = "always";
    }
    {
      name = "window-manager";
      command = [ windowManager ];
      after = [ "display" ];
      # ready once it owns the display (WM_S0): a terminal mapped earlier may stay unmanaged
      ready.wm = ":${toString display}";
      restart = "always";
    }
    {
      name = "terminal";
      command = [ terminal ] ++ terminalArgs;
      after = [ "window-manager" ];
      restart = "always";
    }
  ];
}
