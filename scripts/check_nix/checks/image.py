"""image/: the default configuration renders and passes `deskd check`; image/default.nix,
evaluated with stand-ins for nixpkgs, hands streamLayeredImage known arguments and an OCI
config that follows its settings, for the default image and derived ones (ports, healthcheck,
everything derived from the display number); the token directory deskd ctl reads is the
user's; the closure report script works; deskd warns when it cannot write the token."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ..context import Context
from .. import toml, tools

TITLE = "image/: settings, streamLayeredImage arguments, OCI config, token directory, closure report"

# streamLayeredImage's arguments (pkgs/build-support/docker/default.nix).
ARGS = {"name", "tag", "fromImage", "contents", "config", "architecture", "created", "mtime",
        "uid", "gid", "uname", "gname", "maxLayers", "extraCommands", "fakeRootCommands",
        "enableFakechroot", "includeStorePaths", "includeNixDB", "passthru", "meta",
        "layeringPipeline", "debug"}
# The image config keys Docker and podman read (moby image spec, "config" object).
CONFIG = {"User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Healthcheck", "ArgsEscaped",
          "Volumes", "WorkingDir", "Labels", "StopSignal", "OnBuild", "Shell"}
HEALTH = {"Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"}
UID = 1000


def port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def strings(value: Any):
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)


def token_dir(root: Path) -> str:
    """The directory of deskd ctl's default token file, as supervisor/src/ctl.rs says."""
    m = re.search(r'DEFAULT_TOKEN_FILE: &str = "([^"]+)"', (root / "supervisor/src/ctl.rs").read_text())
    return str(Path(m.group(1)).parent) if m else "/run/deskd"


def image_problems(which: str, view: dict, run_dir: str) -> list[str]:
    """What is wrong with one image's streamLayeredImage arguments (pure; unit-tested)."""
    p: list[str] = []
    a, s = view["args"], view["finalSettings"]
    cfg = a["config"]

    def check(cond: bool, what: str) -> None:
        if not cond:
            p.append(f"{which}: {what}")

    check(set(a) <= ARGS, f"unknown streamLayeredImage arguments {sorted(set(a) - ARGS)}")
    check(set(cfg) <= CONFIG, f"not image config keys: {sorted(set(cfg) - CONFIG)}")
    check(set(cfg.get("Healthcheck", {})) <= HEALTH, "unknown Healthcheck keys")
    ports = cfg.get("ExposedPorts", {})
    check(all(re.fullmatch(r"[0-9]+/(tcp|udp)", k) and v == {} for k, v in ports.items()),
          f"ExposedPorts must map 'PORT/proto' to {{}}: {ports}")
    http = port(s["http"]["listen"])
    neko = s.get("neko", {})
    want_tcp = {f"{http}/tcp"} | ({f"{neko['tcpmux']}/tcp"} if "tcpmux" in neko else set())
    got_tcp = {k for k in ports if k.endswith("/tcp")}
    check(got_tcp == want_tcp, f"TCP ports exposed {sorted(got_tcp)}: only the HTTP port (and tcpmux) should be, {sorted(want_tcp)}")
    if "epr" in neko:
        lo, hi = (int(x) for x in neko["epr"].split("-"))
        want_udp = {f"{n}/udp" for n in range(lo, hi + 1)}
    else:
        want_udp = {f"{neko.get('udp_port', 59000)}/udp"}
    got_udp = {k for k in ports if k.endswith("/udp")}
    check(got_udp == want_udp, f"UDP ports exposed {sorted(got_udp)}, the settings use {sorted(want_udp)}")
    test = cfg.get("Healthcheck", {}).get("Test", [])
    check(bool(test) and test[0] == "CMD" and test[-1] == f"http://127.0.0.1:{http}/healthz",
          f"the healthcheck does not probe /healthz on the HTTP port: {test}")
    check(all(isinstance(cfg.get("Healthcheck", {}).get(k), int) for k in ("Interval", "Timeout", "StartPeriod")),
          "Healthcheck durations must be integers (nanoseconds)")
    env = dict(e.split("=", 1) for e in cfg.get("Env", []))
    number = s["display"]["number"]
    check(env.get("DISPLAY") == f":{number}", f"DISPLAY is {env.get('DISPLAY')}, display.number is {number}")
    # Everything derived from the display number follows it: every X display named in the
    # settings (probes like ready.wm) is the configured one.
    others = sorted({x for x in strings(s) if re.fullmatch(r":[0-9]+", x)} - {f":{number}"})
    check(not others, f"display.number is {number} but the settings name display {', '.join(others)} "
                      "(e.g. a window manager's ready probe): it would never become ready")
    check(cfg.get("User") == f"{UID}:{UID}", f"User {cfg.get('User')}")
    ep = cfg.get("Entrypoint", [])
    check(ep[1:] == ["run"] and ep[:1] and ep[0].endswith("/bin/deskd"), f"Entrypoint {ep}")
    check(cfg.get("StopSignal") == "SIGTERM", "StopSignal")
    fr = a.get("fakeRootCommands", "")
    check("chmod 1777 ./tmp" in fr, "/tmp is not made 1777")
    words = [line.split() for line in fr.splitlines()]
    made = any(w[:1] == ["mkdir"] and f".{run_dir}" in w for w in words)
    owned = any(w[:2] == ["chown", f"{UID}:{UID}"] and f".{run_dir}" in w for w in words)
    check(made and owned, f"no {run_dir} in the image that uid {UID} owns, for deskd's control token "
                          f"(deskd ctl through docker exec): made {made}, chowned {owned}")
    labels = cfg.get("Labels", {})
    check(all(k.startswith("org.opencontainers.image.") for k in labels), "label names")
    check({"title", "source", "version", "revision", "licenses"} <= {k.rsplit(".", 1)[1] for k in labels},
          "missing org.opencontainers.image.* labels")
    names = [x["name"] for x in s.get("service", [])]
    check(len(names) == len(set(names)), f"service names repeat: {names}")
    return p


def set_problems(views: dict[str, dict], run_dir: str) -> list[str]:
    p = [x for which, v in views.items() for x in image_problems(which, v, run_dir)]
    d = views["derived"]
    if not (d["args"]["name"] == "my-desktop" and d["args"]["tag"] == "1"):
        p.append("derived: name and tag not passed through")
    if d["args"]["config"]["Labels"].get("org.opencontainers.image.vendor") != "me":
        p.append("derived: extra labels lost")
    if [x["name"] for x in d["finalSettings"]["service"]][-1:] != ["browser"]:
        p.append("derived: extra services are not appended")
    m = [x["name"] for x in views["minimal"]["finalSettings"]["service"]]
    if m != ["pulseaudio"]:
        p.append(f"minimal: desktop = false keeps only PulseAudio, got {m}")
    if views["default"]["args"]["tag"] != "0.1.0":
        p.append("default: the tag is not deskd's version")
    if "xvfb" not in views["default"]["rootPaths"] or "xorg-server" in views["default"]["rootPaths"]:
        p.append(f"default: the image should have pkgs.xvfb, not the full X server: {views['default']['rootPaths']}")
    if "xorg-server" not in views["noXvfb"]["rootPaths"]:
        p.append("without pkgs.xvfb the image must fall back to the full X server")
    cr = views["default"]["closureReport"]
    if cr["env"].get("forbidden") != "xorg-server" or views["noXvfb"]["closureReport"]["env"].get("forbidden") != "":
        p.append("the closure report must ban xorg-server exactly where pkgs.xvfb exists")
    if not cr["env"].get("__structuredAttrs") or "deskd-image-root" not in cr["roots"]:
        p.append(f"the closure report needs structured attributes and the image's contents as roots: {cr['roots']}")
    return p


def run_fake_root(ctx: Context, commands: str, run_dir: str) -> None:
    """Runs fakeRootCommands as root in a scratch directory (as streamLayeredImage does under
    fakeroot) and checks that uid 1000 can write deskd's token there."""
    r = ctx.report
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        r.skip("fakeRootCommands not run: needs root and setpriv to set and test ownership")
        return
    layer = ctx.scratch("layer")
    p = tools.run(["bash", "-euc", commands], cwd=layer)
    if p.returncode != 0:
        r.bad(f"fakeRootCommands fail: {p.stderr.strip()}")
        return
    d = layer / run_dir.lstrip("/")
    st = d.stat() if d.is_dir() else None
    token = d / "token"
    w = tools.run(["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "sh", "-c", f"umask 077; echo t > '{token}'"])
    r.check(st is not None and st.st_uid == UID and (st.st_mode & 0o777) == 0o700 and w.returncode == 0,
            f"fakeRootCommands give uid {UID} its own {run_dir} (0700), where it can write the token",
            f"{run_dir}: {'missing' if st is None else f'uid {st.st_uid}, mode {oct(st.st_mode & 0o777)}'}; write: {w.stderr.strip()}")


def closure_report_script(ctx: Context, view: dict) -> None:
    """image/closure-report.sh on a made-up closure: it reports, and refuses a banned path."""
    r = ctx.report
    d = ctx.scratch("closure-report")
    closure = [{"path": "/nix/store/00000000000000000000000000000000-xvfb-21.1.13", "narSize": 3 * 2**20, "references": []},
               {"path": "/nix/store/11111111111111111111111111111111-glibc-2.40", "narSize": 30 * 2**20, "references": []}]
    banned = {"path": "/nix/store/22222222222222222222222222222222-xorg-server-21.1.13", "narSize": 5 * 2**20, "references": []}
    script = ctx.root / "image/closure-report.sh"
    results = []
    for entries in (closure, closure + [banned]):
        (d / ".attrs.json").write_text(json.dumps({"closure": entries}))
        env = dict(os.environ, out=str(d / "out"), NIX_BUILD_TOP=str(d), forbidden=view["env"]["forbidden"])
        env.pop("NIX_ATTRS_JSON_FILE", None)
        results.append((tools.run(["bash", str(script)], env=env), (d / "out").read_text() if (d / "out").exists() else ""))
    (ok_run, ok_out), (ban_run, _) = results
    r.check(ok_run.returncode == 0 and "total: 33 MiB in 2 store paths" in ok_out and "glibc" in ok_out.splitlines()[2],
            "image/closure-report.sh writes the total and the largest paths first",
            f"exit {ok_run.returncode}: {ok_run.stderr.strip()} {ok_out[:300]}")
    r.check(ban_run.returncode != 0 and "xorg-server must not be in the image" in ban_run.stderr,
            "image/closure-report.sh fails when the full X server is in the closure",
            f"exit {ban_run.returncode}: {ban_run.stderr.strip()}")


def token_warning(ctx: Context, run_dir: str) -> None:
    """deskd run, unable to write <run_dir>/token, says so at WARN level (the image without a
    writable directory printed this only at debug level)."""
    r = ctx.report
    token = Path(run_dir) / "token"
    if os.geteuid() == 0 and shutil.which("setpriv"):
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    elif not os.access(run_dir if os.path.isdir(run_dir) else str(Path(run_dir).parent), os.W_OK):
        prefix = []
    else:
        r.skip(f"not run: this user can write {run_dir} and cannot become another one")
        return
    try:
        deskd = ctx.deskd()
    except tools.ToolError as e:
        r.bad(f"deskd for the token warning: {e}")
        return
    d = ctx.scratch("token-warning")
    conf = d / "deskd.toml"
    conf.write_text('[http]\nlisten = "127.0.0.1:0"\n')
    conf.chmod(0o644)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    log = d / "deskd.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*prefix, str(deskd), "run", "-c", str(conf), "--conf-d", str(d / "none")],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text(errors="replace")
            if "HTTP server listening" in text or " WARN " in text:
                break
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    lines = log.read_text(errors="replace").splitlines()
    warned = [l for l in lines if " WARN " in l and str(token) in l]
    r.check(bool(warned), f"deskd warns when it cannot write {token}: {warned[0].split(' WARN ', 1)[1] if warned else ''}",
            "no WARN line naming it:\n" + "\n".join(lines[-10:]))


def check(ctx: Context) -> None:
    r = ctx.report
    r.step(TITLE)
    run_dir = token_dir(ctx.root)
    pkgs_dir = ctx.stand_in_pkgs()
    true = shutil.which("true") or "/bin/true"
    try:
        settings = ctx.nix.eval_json(expr=f"""import ./image/settings.nix {{
          neko = "{true}"; pulseaudio = "{true}"; windowManager = "{true}";
          terminal = "{true}"; pulseScript = "{ctx.root}/image/default.pa"; }}""")
        r.ok("image/settings.nix evaluates")
        f = ctx.scratch("image-toml") / "settings.toml"
        f.write_text(toml.dumps(settings))
        ctx.deskd_check(f, "the image's default configuration")
    except (tools.ToolError, ValueError, TypeError) as e:
        r.bad(f"image/settings.nix: {e}")
    try:
        views = ctx.nix.stub("image", pkgsDir=str(pkgs_dir))
    except tools.ToolError as e:
        r.bad(f"image/default.nix does not evaluate with stand-ins: {e}")
        return
    r.ok(f"image/default.nix evaluates: {', '.join(views)} (default, a derived one, display.number = 7, desktop = false, no pkgs.xvfb)")
    r.problems("streamLayeredImage arguments; OCI config keys, ports (only HTTP on TCP), healthcheck, user, labels; "
               "DISPLAY and every display probe follow display.number; xvfb; closure report roots", set_problems(views, run_dir))
    for which, v in views.items():
        f = ctx.scratch("image-toml") / f"{which}.toml"
        try:
            f.write_text(toml.dumps(v["finalSettings"]))
        except (ValueError, TypeError) as e:
            r.bad(f"the {which} image's settings do not render to TOML: {e}")
            continue
        ctx.deskd_check(f, f"the {which} image's /etc/deskd/deskd.toml")
    run_fake_root(ctx, views["default"]["args"]["fakeRootCommands"], run_dir)
    closure_report_script(ctx, views["default"]["closureReport"])
    token_warning(ctx, run_dir)
