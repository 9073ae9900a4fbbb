"""Cargo.lock as buildRustPackage will vendor it: every locked crate can be fetched at its
locked version (not --offline: importCargoLock vendors Windows-only crates too, which no
Linux build downloads), no git sources (they would need outputHashes), the manifest gives
nix/deskd.nix literal fields, and crates whose build runs a tool get that tool from
nix/deskd.nix (the native stream's openh264 assembles its x86 kernels with nasm)."""

import json
import re

from ..context import Context
from .. import tools

TITLE = "Cargo: the lock buildRustPackage will vendor, and the tools crates' builds run"

# crate in Cargo.lock -> (nixpkgs package its build script runs, the systems that need it)
BUILD_TOOLS = {
    "openh264-sys2": ("nasm", ["x86_64-linux"]),
}


def locked_crates(lock_text: str) -> set[str]:
    return set(re.findall(r'^name = "([^"]+)"$', lock_text, re.M))


def tool_problems(crates: set[str], native_inputs: dict[str, list[str]]) -> list[str]:
    p = []
    for crate, (tool, systems) in BUILD_TOOLS.items():
        if crate not in crates:
            continue
        for system in systems:
            if tool not in native_inputs.get(system, []):
                p.append(f"Cargo.lock has {crate}, whose build needs {tool} on {system}, "
                         f"but nix/deskd.nix's nativeBuildInputs there are {native_inputs.get(system)}")
    return p


def check(ctx: Context) -> None:
    r = ctx.report
    r.step(TITLE)
    p = tools.run(["cargo", "metadata", "--locked", "--format-version", "1"], cwd=ctx.root, timeout=900)
    r.check(p.returncode == 0, "cargo metadata --locked (every crate in Cargo.lock fetched)", tools.tail(p.stderr, 5))
    lock = (ctx.root / "Cargo.lock").read_text()
    r.check('source = "git+' not in lock, "no git dependencies in Cargo.lock",
            "nix/deskd.nix then needs cargoLock.outputHashes")
    try:
        pkg = ctx.nix.eval_json(expr="(builtins.fromTOML (builtins.readFile ./supervisor/Cargo.toml)).package")
    except tools.ToolError as e:
        r.bad(f"supervisor/Cargo.toml: {e}")
        return
    r.check(pkg.get("name") == "deskd" and isinstance(pkg.get("version"), str) and isinstance(pkg.get("description"), str),
            "supervisor/Cargo.toml gives nix/deskd.nix a literal name, version and description",
            f"nix/deskd.nix reads package.version and .description as strings: {json.dumps(pkg)[:300]}")
    native = ctx.nix.stub("flake", pkgsDir=str(ctx.stand_in_pkgs()))["deskdNativeBuildInputs"]
    crates = locked_crates(lock)
    needing = sorted(c for c in BUILD_TOOLS if c in crates)
    r.problems(
        f"nix/deskd.nix gives the crates' build tools ({', '.join(f'{c}: {BUILD_TOOLS[c][0]}' for c in needing) or 'none needed yet'}); "
        f"nativeBuildInputs {json.dumps(native)}",
        tool_problems(crates, native),
    )
