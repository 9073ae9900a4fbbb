"""image/neko-base.json, the neko base image pin: name, digest, tag, one hash per
architecture (null until computed where the registry is reachable); update-neko-base.sh is an
executable bash script."""

import json
import os
import re

from ..context import Context
from .. import tools

TITLE = "image/neko-base.json: the neko base image pin"
SRI = re.compile(r"sha256-[A-Za-z0-9+/]{43}=")


def pin_problems(pin: dict) -> tuple[list[str], list[str]]:
    """(problems, architectures whose hash is still null)."""
    p = []
    if pin.get("imageName") != "ghcr.io/m1k1o/neko/base":
        p.append(f"imageName is {pin.get('imageName')!r}, not ghcr.io/m1k1o/neko/base")
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", str(pin.get("imageDigest", ""))):
        p.append(f"imageDigest is not sha256:<64 hex>: {pin.get('imageDigest')!r}")
    if not (isinstance(pin.get("finalImageTag"), str) and pin["finalImageTag"]):
        p.append("finalImageTag is missing")
    hashes = pin.get("hash", {})
    if sorted(hashes) != ["amd64", "arm64"]:
        p.append(f"hash must have exactly amd64 and arm64, has {sorted(hashes)}")
    unpinned = []
    for arch, h in sorted(hashes.items()):
        if h is None:
            unpinned.append(arch)
        elif not (isinstance(h, str) and SRI.fullmatch(h)):
            p.append(f"hash.{arch} is neither null nor an SRI sha256: {h!r}")
    return p, unpinned


def check(ctx: Context) -> None:
    r = ctx.report
    r.step(TITLE)
    try:
        pin = json.loads((ctx.root / "image/neko-base.json").read_text())
    except (OSError, ValueError) as e:
        r.bad(f"image/neko-base.json is not JSON: {e}")
        return
    problems, unpinned = pin_problems(pin)
    r.problems("imageName, imageDigest, finalImageTag and a hash per architecture are well formed", problems)
    for arch in unpinned:
        r.skip(f"hash.{arch} not pinned yet: the nix workflow computes it and fails with the lines to commit "
               "(or run image/update-neko-base.sh where the registry is reachable)")
    script = ctx.root / "image/update-neko-base.sh"
    syntax = tools.run(["bash", "-n", str(script)]) if script.exists() else None
    r.check(script.exists() and os.access(script, os.X_OK) and syntax is not None and syntax.returncode == 0,
            "update-neko-base.sh is an executable bash script",
            "missing, not executable or not valid bash" + (f": {syntax.stderr.strip()}" if syntax and syntax.returncode else ""))
