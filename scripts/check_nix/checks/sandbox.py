"""checks.deskd-tests in a stand-in of its build sandbox: the Rust suite run with only the
programs the check gives its tests (their Debian builds, mapped from the nixpkgs names in
nativeCheckInputs), the sandbox's environment (no locale, HOME=/homeless-shelter) plus the
check's own `env`, and its --skip flags. A test that needs a program the check forgot, or a
locale it does not set, fails here as it would in `nix flake check`.

Tests that fail are run once more on their own: one that then passes is reported as flaky
(this machine's load), not as a fault of the check. What the stand-in cannot take away: the host's user namespaces and root (tests that skip in
the sandbox may run here), and files at absolute paths (e.g. /usr/bin/chromium, used only by
the tests the check skips by name)."""

import os
import re
import shutil
import time
from pathlib import Path

from ..context import Context
from ..tools import ToolError, run, tail

TITLE = "checks.deskd-tests in a stand-in of the build sandbox (only its programs, no locale)"

# nixpkgs package name -> the programs it gives a test (looked up on this Debian machine);
# "deb:NAME" stands for every program of the Debian package NAME.
PACKAGES: dict[str, list[str]] = {
    "xvfb": ["Xvfb"],
    "xorg-server": ["Xvfb"],
    "xdpyinfo": ["xdpyinfo"],
    "xwininfo": ["xwininfo"],
    "xdotool": ["xdotool"],
    "xclip": ["xclip"],
    "xrandr": ["xrandr"],
    "openbox": ["openbox"],
    "xterm": ["xterm"],
    # Debian ships util-linux's kill in procps.
    "util-linux": ["deb:util-linux", "deb:mount", "deb:bsdutils", "kill"],
    "nodejs": ["node"],
    "python3": ["python3"],
    # nixpkgs' gstreamer keeps its programs in the bin output; the plugins come from
    # GST_PLUGIN_SYSTEM_PATH_1_0, which the stand-in leaves to Debian's default directory.
    "gstreamer-bin": ["gst-launch-1.0"],
}
# What stdenv puts on every build's PATH.
STDENV = [f"deb:{p}" for p in "coreutils findutils diffutils grep sed tar gzip bzip2 xz-utils patch make bash".split()]
STDENV += ["awk", "cc", "c++", "ld", "ar"]
DEBIAN_BIN = [Path(p) for p in ("/usr/bin", "/bin", "/usr/sbin", "/sbin")]
# The Nix sandbox's environment for a build (besides PATH and what the derivation sets).
SANDBOX_ENV = {
    "HOME": "/homeless-shelter",
    "TERM": "xterm-256color",
    "NIX_BUILD_CORES": "2",
}


def find_program(name: str) -> Path | None:
    """A Debian program by name: the distribution's directories first (not pyenv shims or
    a user's ~/.local), then PATH."""
    for d in DEBIAN_BIN:
        p = d / name
        if p.exists() and os.access(p, os.X_OK):
            return p
    found = shutil.which(name)
    return Path(found) if found and "/shims/" not in found else None


def deb_programs(package: str) -> dict[str, Path] | None:
    """The executables a Debian package installs in the bin directories (None: not installed)."""
    p = run(["dpkg", "-L", package])
    if p.returncode != 0:
        return None
    progs: dict[str, Path] = {}
    for line in p.stdout.splitlines():
        path = Path(line)
        if path.parent in DEBIAN_BIN and path.exists() and not path.is_dir() and os.access(path, os.X_OK):
            progs.setdefault(path.name, path)
    return progs


def programs_for(what: str, spec: list[str]) -> tuple[dict[str, Path], list[str]]:
    progs: dict[str, Path] = {}
    missing = []
    for item in spec:
        if item.startswith("deb:"):
            got = deb_programs(item[4:])
            if got is None:
                missing.append(f"{what}: Debian package {item[4:]} is not installed (scripts/setup-deps)")
            else:
                progs.update(got)
        else:
            p = find_program(item)
            if p:
                progs[item] = p
            else:
                missing.append(f"{what}: {item} is not installed here (scripts/setup-deps)")
    return progs, missing


def stand_in_programs(inputs: list[str]) -> tuple[dict[str, Path], list[str]]:
    """Programs for stdenv and the check's nativeCheckInputs; and what cannot be had."""
    progs, problems = programs_for("stdenv", STDENV)
    progs["sh"] = progs.get("bash", Path("/bin/bash"))  # nixpkgs' bash has bin/sh
    for pkg in inputs:
        spec = PACKAGES.get(pkg)
        if spec is None:
            problems.append(
                f"nativeCheckInputs has pkgs.{pkg}, for which the checker has no Debian stand-in: "
                "add its programs to PACKAGES in scripts/check_nix/checks/sandbox.py"
            )
            continue
        got, missing = programs_for(pkg, spec)
        progs.update(got)
        problems += missing
    return progs, problems


def sandbox_env(drv_env: dict[str, str], stub_dir: str, bindir: Path, tmp: Path) -> tuple[dict[str, str], list[str]]:
    """The environment a test sees in the sandbox; values that are stand-in store paths
    (e.g. a fonts.conf) are left out and named."""
    env = dict(SANDBOX_ENV)
    env.update(PATH=str(bindir), TMPDIR=str(tmp), TEMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp), NIX_BUILD_TOP=str(tmp))
    dropped = []
    for k, v in drv_env.items():
        if v.startswith(stub_dir):
            dropped.append(k)
        else:
            env[k] = v
    return env, dropped


def failed_tests(output: str) -> list[str]:
    return re.findall(r"^test (\S+) \.\.\. FAILED$", output, re.M)


def failure_sections(output: str) -> str:
    """libtest's `---- NAME stdout ----` sections (what the failed tests printed), or the
    output's tail when there are none (a build or harness error)."""
    sections = re.findall(r"^---- .*?(?=^failures:$|^---- )", output, re.M | re.S)
    return "".join(sections).strip() or tail(output, lines=40, chars=4000)


def check(ctx: Context) -> None:
    r = ctx.report
    r.step(TITLE)
    stub_dir = str(ctx.scratch("pkgs"))
    try:
        drv = ctx.nix.stub("flake", pkgsDir=stub_dir)["deskdTests"]
    except ToolError as e:
        r.bad(f"checks.deskd-tests does not evaluate with stand-ins: {e}")
        return
    skipped = [f for i, f in enumerate(drv["checkFlags"]) if i > 0 and drv["checkFlags"][i - 1] == "--skip"]
    sources = "\n".join(p.read_text() for p in (ctx.root / "supervisor").rglob("*.rs"))
    unknown = [t for t in skipped if not re.search(rf"fn {re.escape(t)}\(", sources)]
    r.check(bool(skipped) and not unknown, f"the {len(skipped)} tests it skips by name exist",
            f"no test is called {', '.join(unknown)}" if unknown else "no --skip flags found")

    progs, problems = stand_in_programs(drv["nativeCheckInputs"])
    if problems:
        for p in problems:
            (r.bad if "no Debian stand-in" in p else r.skip)(p)
        if any("no Debian stand-in" not in p for p in problems):
            r.skip("the suite is not run in the stand-in sandbox: programs are missing here")
            return
    bindir = ctx.scratch("sandbox-bin")
    for name, path in progs.items():
        link = bindir / name
        if not link.exists():
            link.symlink_to(path)
    sysroot = run(["rustc", "--print", "sysroot"])
    if sysroot.returncode != 0:
        r.bad(f"rustc --print sysroot: {tail(sysroot.stderr)}")
        return
    for tool in ("cargo", "rustc", "rustdoc"):
        link = bindir / tool
        if not link.exists():
            link.symlink_to(Path(sysroot.stdout.strip()) / "bin" / tool)
    build_tmp = ctx.scratch("sandbox-build")
    env, dropped = sandbox_env(drv["env"], stub_dir, bindir, build_tmp)
    env["CARGO_HOME"] = os.environ.get("CARGO_HOME", str(Path.home() / ".cargo"))  # the vendored crates
    env["CARGO_TARGET_DIR"] = str(ctx.target_dir())
    shown = ", ".join(f"{k}={v}" for k, v in sorted(drv["env"].items()) if k not in dropped)
    r.ok(f"the sandbox's PATH: {len(progs)} programs from stdenv and {', '.join(drv['nativeCheckInputs'])}; env {shown or 'none'}"
         + (f" (left out, stand-in store paths: {', '.join(dropped)})" if dropped else ""))

    # Build with the ordinary environment first, so the sandbox run only runs tests.
    cmd = ["cargo", "test", "--locked", *drv["cargoTestFlags"]]
    p = run([*cmd, "--no-run"], cwd=ctx.root, timeout=3600)
    if p.returncode != 0:
        r.bad(f"cargo test --no-run: {tail(p.stderr)}")
        return
    began = time.monotonic()
    p = run([*cmd, "--offline", "--no-fail-fast", "--", *drv["checkFlags"]], cwd=ctx.root, env=env, timeout=1800)
    took = time.monotonic() - began
    out = p.stdout + p.stderr
    names = failed_tests(out)
    flaky = ""
    if p.returncode != 0 and names:
        # Once more, only the failed tests: one that fails under this machine's load and then
        # passes is named as flaky rather than blamed on the sandbox.
        again = run([*cmd, "--offline", "--", *drv["checkFlags"], "--exact", *names], cwd=ctx.root, env=env, timeout=900)
        if again.returncode == 0:
            flaky = f"; flaky: {', '.join(names)} failed, then passed when run again"
            p = again
    if p.returncode == 0:
        passed = sum(int(n) for n in re.findall(r"test result: ok\. (\d+) passed", out))
        r.ok(f"the suite passes there ({passed} tests, {took:.0f} s{flaky})")
    else:
        r.bad(f"the suite fails in the stand-in sandbox (exit {p.returncode}, {took:.0f} s): "
              f"{', '.join(names) or 'see below'}\n{failure_sections(out)[-6000:]}")

