"""image/neko.nix's GStreamer plugin registry, run with stand-ins: its install script builds
the registry from exactly the plugin path the wrapper sets, the wrapper points GST_REGISTRY at
it, and a GStreamer started with the wrapper's environment and a fresh home (neko's first
start in a new container) loads no plugin. Debian's gst-inspect-1.0 and plugins stand in for
nixpkgs' (gstreamer1.0-tools; skipped without it). The figures are this machine's."""

import os
import re
import shlex
import shutil
import stat
import time
from pathlib import Path

from ..context import Context
from .. import tools

TITLE = "image/neko.nix: a prebuilt GStreamer registry, so neko's first start scans no plugin"

DEBIAN_PLUGINS = [Path("/usr/lib/x86_64-linux-gnu/gstreamer-1.0"), Path("/usr/lib/aarch64-linux-gnu/gstreamer-1.0")]
LOADED = "_priv_gst_plugin_load_file_for_registry"

# Stand-ins for what neko.nix's install script calls: runHook, and makeWrapper writing down
# its arguments; gst-inspect-1.0 logs the registry and plugin path it was built with.
PRELUDE = r"""
set -euo pipefail
runHook() { :; }
makeWrapper() { printf '%s\n' "$@" > "$WRAPPER_ARGS"; }
"""
RECORDER = """#!/bin/sh
printf '%s\\n%s\\n' "$GST_REGISTRY" "$GST_PLUGIN_SYSTEM_PATH_1_0" > "{log}"
exec {real} "$@"
"""


def wrapper_env(args: list[str]) -> dict[str, str]:
    """The environment makeWrapper's --set/--prefix flags give the program (on an empty one)."""
    env: dict[str, str] = {}
    i = 2
    while i < len(args):
        if args[i] == "--set":
            env[args[i + 1]] = args[i + 2]
            i += 3
        elif args[i] == "--prefix":
            name, sep, value = args[i + 1], args[i + 2], args[i + 3]
            env[name] = value + (sep + env[name] if name in env else "")
            i += 4
        else:
            i += 1
    return env


def loads(env: dict[str, str], gst_inspect: str) -> tuple[list[str], float]:
    """The plugins GStreamer loads to start with env, and the seconds it took."""
    began = time.monotonic()
    p = tools.run([gst_inspect, "--version"], env={**env, "GST_DEBUG": "GST_PLUGIN_LOADING:4"})
    took = time.monotonic() - began
    return [Path(m).name for m in re.findall(LOADED + r'.*?plugin "([^"]+)"', p.stderr)], took


def check(ctx: Context) -> None:
    r = ctx.report
    r.step(TITLE)
    gst_inspect = shutil.which("gst-inspect-1.0")
    plugins = next((d for d in DEBIAN_PLUGINS if d.is_dir()), None)
    if gst_inspect is None or plugins is None:
        r.skip("gst-inspect-1.0 or Debian's GStreamer plugins missing (gstreamer1.0-tools): the registry is not built here")
        return
    pkgs = ctx.scratch("gst-pkgs")
    for name in ("gstreamer", "gst-plugins-good", "gst-plugins-bad", "gst-plugins-ugly"):
        (pkgs / name / "lib" / "gstreamer-1.0").mkdir(parents=True, exist_ok=True)
    base = pkgs / "gst-plugins-base" / "lib"
    base.mkdir(parents=True, exist_ok=True)
    if not (base / "gstreamer-1.0").exists():
        (base / "gstreamer-1.0").symlink_to(plugins)
    work = ctx.scratch("neko-install")
    log = work / "gst-inspect.log"
    binary = pkgs / "gstreamer-bin" / "bin" / "gst-inspect-1.0"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text(RECORDER.format(log=log, real=shlex.quote(gst_inspect)))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    try:
        install = ctx.nix.stub("neko", pkgsDir=str(pkgs))["installPhase"]
    except tools.ToolError as e:
        r.bad(f"image/neko.nix does not evaluate with stand-ins: {e}")
        return
    (work / "rootfs/usr/bin").mkdir(parents=True, exist_ok=True)
    (work / "rootfs/usr/bin/neko").write_text("#!/bin/sh\n")
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    tmp = ctx.scratch("neko-install-tmp")
    env = {"PATH": os.environ["PATH"], "out": str(out), "TMPDIR": str(tmp), "WRAPPER_ARGS": str(work / "wrapper")}
    p = tools.run(["bash", "-c", PRELUDE + install], cwd=work, env=env)
    if p.returncode != 0:
        r.bad(f"neko.nix's install script fails with stand-ins: {tools.tail(p.stderr)}")
        return
    built = log.read_text().splitlines() if log.exists() else []
    args = (work / "wrapper").read_text().splitlines()
    wrapped = wrapper_env(args)
    registry = wrapped.get("GST_REGISTRY", "")
    problems = []
    if len(built) != 2 or not built[0]:
        problems.append("the install script does not run gst-inspect-1.0 with GST_REGISTRY set")
    elif built[0] != registry:
        problems.append(f"the registry is built at {built[0]} but the wrapper sets GST_REGISTRY={registry or '(nothing)'}")
    elif built[1] != wrapped.get("GST_PLUGIN_SYSTEM_PATH_1_0"):
        problems.append("the registry is built from another plugin path than the wrapper's")
    if registry and not (Path(registry).is_file() and Path(registry).stat().st_size > 0):
        problems.append(f"no registry at {registry}")
    if problems:
        for x in problems:
            r.bad(x)
        return
    r.ok(f"the install script builds the registry ({Path(registry).stat().st_size // 1024} KiB here) "
         "from the wrapper's plugin path, and the wrapper sets GST_REGISTRY to it")
    # neko's first start in a fresh container: the wrapper's environment, a new home, the
    # registry read-only as in the store.
    Path(registry).chmod(0o444)
    home = ctx.scratch("neko-home")
    first = {**wrapped, "HOME": str(home), "PATH": os.environ["PATH"]}
    with_reg, t_with = loads(first, gst_inspect)
    cold = {k: v for k, v in first.items() if k != "GST_REGISTRY"}
    cold["HOME"] = str(ctx.scratch("neko-home-cold"))
    without, t_cold = loads(cold, gst_inspect)
    # Plugins that declare dependencies on outside plugin directories (ladspa, lv2, frei0r,
    # libvisual) are re-checked at every start; the rest must come from the registry.
    rescanned = f" (re-checked at every start: {', '.join(with_reg)})" if with_reg else ""
    r.check(bool(without) and len(with_reg) * 20 <= len(without),
            f"neko's GStreamer starts loading {len(with_reg)} plugins in {t_with:.2f} s with it{rescanned}; "
            f"without it a fresh home loads {len(without)} in {t_cold:.2f} s (Debian's {plugins})",
            f"with the registry {len(with_reg)} plugins were loaded ({', '.join(with_reg)}), without it {len(without)}")
