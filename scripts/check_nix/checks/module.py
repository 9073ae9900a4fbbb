"""nix/module.nix with stand-ins for nixpkgs and the module system: secret files are refused
in the store (and as Nix paths, which would be copied there), the firewall and credentials
follow the settings, and the unit it renders passes `systemd-analyze verify` without a word."""

import os
import shutil

from ..context import Context
from .. import tools

TITLE = "nix/module.nix: secret files outside the store, firewall, credentials, the unit"


def secret_problems(s: dict) -> list[str]:
    p = []
    for opt, accepted in s["pathLiteralTypeChecks"].items():
        if accepted:
            p.append(f"services.deskd.{opt} accepts a Nix path (./token), which copies the secret into the world-readable store")
    if not s["stringTypeChecks"]:
        p.append("services.deskd.tokenFile refuses a string path")
    if s["outsideStore"]:
        p.append(f"secret files outside the store are refused: {s['outsideStore']}")
    if len(s["inStore"]) != 2:
        p.append(f"tokenFile and viewTokenFile in the store must both fail an assertion, got {s['inStore']}")
    if not s["relative"]:
        p.append("a relative tokenFile must fail an assertion (LoadCredential= needs an absolute path)")
    return p


def wiring_problems(mod: dict) -> list[str]:
    p = []
    fw = mod["plain"]["networking"]["firewall"]
    if not (fw["allowedTCPPorts"] == [8080] and fw["allowedUDPPorts"] == [59000] and fw["allowedUDPPortRanges"] == []):
        p.append(f"openFirewall with deskd's default ports: {fw}")
    fw = mod["tokens"]["networking"]["firewall"]
    if not (sorted(fw["allowedTCPPorts"]) == [9090, 59100] and fw["allowedUDPPorts"] == []
            and fw["allowedUDPPortRanges"] == [{"from": 59000, "to": 59010}]):
        p.append(f"openFirewall with listen [::]:9090, epr 59000-59010, tcpmux 59100: {fw}")
    svc = mod["tokens"]["systemd"]["services"]["deskd"]["serviceConfig"]
    if svc["LoadCredential"] != ["token:/run/secrets/t", "view-token:/run/secrets/v"]:
        p.append(f"LoadCredential {svc['LoadCredential']}")
    http = mod["tokens"]["services"]["deskd"]["settings"]["http"]
    if not (http.get("token_file") == "/run/credentials/deskd.service/token"
            and http.get("view_token_file") == "/run/credentials/deskd.service/view-token"):
        p.append(f"[http] token files are not where LoadCredential puts them: {http}")
    if "token_file" in mod["plain"]["services"]["deskd"]["settings"]["http"]:
        p.append("token_file set without tokenFile")
    if not (" run -c " in svc["ExecStart"] and "deskd-config-checked" in svc["ExecStart"]):
        p.append(f"ExecStart {svc['ExecStart']}")
    if svc.get("RuntimeDirectory") != "deskd":
        p.append("RuntimeDirectory=deskd gives deskd the /run/deskd its control token goes to")
    user = mod["plain"]["users"]["users"].get("deskd", {})
    if not (user.get("isSystemUser") and user.get("group") == "deskd"):
        p.append(f"system user deskd: {user}")
    path = [x.rsplit("/", 1)[-1] for x in mod["plain"]["systemd"]["services"]["deskd"]["path"]]
    if "xvfb" not in path:
        p.append(f"the unit's PATH has no pkgs.xvfb: {path}")
    return p


def unit_text(svc: dict) -> str:
    """The unit as NixOS renders it: one line per list element, booleans true/false."""
    lines = ["[Unit]", f"Description={svc['description']}"]
    for key in ("after", "wants"):
        lines += [f"{key.capitalize()}={v}" for v in svc.get(key, [])]
    lines.append("[Service]")
    lines += [f'Environment="{k}={v}"' for k, v in svc.get("environment", {}).items()]
    for k, v in svc["serviceConfig"].items():
        for x in v if isinstance(v, list) else [v]:
            lines.append(f"{k}={str(x).lower() if isinstance(x, bool) else x}")
    lines += ["[Install]", "WantedBy=" + " ".join(svc.get("wantedBy", []))]
    return "\n".join(lines) + "\n"


def check(ctx: Context) -> None:
    r = ctx.report
    r.step(TITLE)
    try:
        mod = ctx.nix.stub("module", pkgsDir=str(ctx.stand_in_pkgs()))
    except tools.ToolError as e:
        r.bad(f"nix/module.nix does not evaluate with stand-ins: {e}")
        return
    r.problems("tokenFile and viewTokenFile: strings, absolute, outside the store (a Nix path or a store path is refused)",
               secret_problems(mod["secrets"]))
    r.problems("firewall ports, LoadCredential and [http] token files, ExecStart, RuntimeDirectory, system user, Xvfb",
               wiring_problems(mod))
    if shutil.which("systemd-analyze") is None:
        r.skip("systemd-analyze not installed (Debian package systemd): the unit's directives are not verified")
        return
    d = ctx.scratch("unit")
    (d / "deskd.service").write_text(unit_text(mod["tokens"]["systemd"]["services"]["deskd"]))
    env = dict(os.environ, SYSTEMD_LOG_LEVEL="notice")
    p = tools.run(["systemd-analyze", "verify", "--man=no", "./deskd.service"], cwd=d, env=env)
    said = (p.stdout + p.stderr).strip()
    r.check(p.returncode == 0 and not said, "systemd-analyze verify accepts the rendered deskd.service", said)
