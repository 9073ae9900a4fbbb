# Pieces shared by the VM tests: the client machine with headless Chromium, and the
# command that drives the viewer page from it (./browser.py).
{ pkgs }:

let
  python = pkgs.python3.withPackages (ps: [ ps.selenium ]);
in
{
  # Tokens of the test machines (test-only values; real deployments use tokenFile).
  controlToken = "control-token-0123456789abcdef";
  viewToken = "view-token-0123456789abcdef";

  client =
    { ... }:
    {
      virtualisation.memorySize = 2048;
      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
      ];
    };

  # Shell command run on the client: open URL, wait for live frames, maybe click and type;
  # expect = "control": wait until the input reached neko; "view": until control is refused.
  browse =
    {
      url,
      click ? false,
      type ? "",
      expect ? null,
    }:
    pkgs.lib.escapeShellArgs (
      [
        "${python}/bin/python3"
        "${./browser.py}"
        "--url"
        url
        "--chromium"
        "${pkgs.chromium}/bin/chromium"
        "--chromedriver"
        "${pkgs.chromedriver}/bin/chromedriver"
      ]
      ++ pkgs.lib.optional click "--click"
      ++ pkgs.lib.optionals (type != "") [
        "--type"
        type
      ]
      ++ pkgs.lib.optionals (expect != null) [
        "--expect"
        expect
      ]
    );
}
