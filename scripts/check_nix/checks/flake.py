"""flake.nix asks for one input, nixpkgs on a NixOS release branch; flake.lock is a real lock
of exactly that branch; the flake's outputs exist under the names docs and CI use."""

import base64
import json
import re
import time

from ..context import Context
from ..tools import ToolError

TITLE = "flake.nix and flake.lock: one input, nixpkgs on a NixOS release branch, locked"

BRANCH = re.compile(r"^github:NixOS/nixpkgs/(nixos-[0-9]{2}\.(05|11))$")
# What docs/nix.md, the workflows and the VM tests refer to.
CHECKS = {"deskd", "deskd-tests", "stream", "image", "image-closure"}
PACKAGES = {"deskd", "neko", "image", "default"}


def lock_problems(lock: dict, branch: str | None, now: float) -> list[str]:
    p: list[str] = []
    nodes = lock.get("nodes", {})
    nixpkgs = nodes.get("nixpkgs", {})
    locked = nixpkgs.get("locked", {})
    if lock.get("version") != 7:
        p.append(f"flake.lock version is {lock.get('version')}, expected 7")
    if lock.get("root") != "root" or not isinstance(nodes.get("root"), dict):
        p.append("flake.lock has no root node")
    if nodes.get("root", {}).get("inputs") != {"nixpkgs": "nixpkgs"}:
        p.append(f"flake.lock root inputs are {nodes.get('root', {}).get('inputs')}, expected nixpkgs only")
    if sorted(nodes) != ["nixpkgs", "root"]:
        p.append(f"flake.lock has nodes {sorted(nodes)}, expected nixpkgs and root")
    if not (locked.get("type") == "github" and str(locked.get("owner", "")).lower() == "nixos" and locked.get("repo") == "nixpkgs"):
        p.append(f"nixpkgs is not locked to github:NixOS/nixpkgs: {locked}")
    if not re.fullmatch(r"[0-9a-f]{40}", str(locked.get("rev", ""))):
        p.append(f"locked rev is not 40 hex digits: {locked.get('rev')}")
    nar = str(locked.get("narHash", ""))
    if not re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", nar) or len(base64.b64decode(nar[7:] + "==")[:33]) != 32:
        p.append(f"narHash is not an SRI sha256: {nar}")
    modified = locked.get("lastModified")
    if not (isinstance(modified, int) and 1500000000 < modified <= now):
        p.append(f"lastModified is not a past timestamp: {modified}")
    if branch and nixpkgs.get("original") != {"owner": "NixOS", "repo": "nixpkgs", "ref": branch, "type": "github"}:
        p.append(f"flake.lock's original is {nixpkgs.get('original')}, not github:NixOS/nixpkgs/{branch} as flake.nix says")
    return p


def check(ctx: Context) -> None:
    r = ctx.report
    r.step(TITLE)
    try:
        inputs = ctx.nix.eval_json(expr="builtins.attrNames (import ./flake.nix).inputs")
        url = ctx.nix.eval_json(expr="(import ./flake.nix).inputs.nixpkgs.url")
        outputs_args = ctx.nix.eval_json(expr="builtins.attrNames (builtins.functionArgs (import ./flake.nix).outputs)")
    except ToolError as e:
        r.bad(f"flake.nix does not evaluate: {e}")
        return
    r.check(inputs == ["nixpkgs"], f"inputs: {inputs}", 'expected ["nixpkgs"]')
    m = BRANCH.match(url)
    r.check(m is not None, f"nixpkgs.url = {url}", "expected github:NixOS/nixpkgs/nixos-YY.MM")
    r.check(outputs_args == ["nixpkgs", "self"], "outputs takes { self, nixpkgs }", f"it takes {outputs_args}")
    try:
        lock = json.loads((ctx.root / "flake.lock").read_text())
    except (OSError, ValueError) as e:
        r.bad(f"flake.lock is not JSON: {e}")
        return
    r.problems("flake.lock locks exactly that branch (version 7, rev, narHash, lastModified, original)",
               lock_problems(lock, m.group(1) if m else None, time.time()))
    try:
        names = ctx.nix.stub("flake", pkgsDir=str(ctx.stand_in_pkgs()))["names"]
    except ToolError as e:
        r.bad(f"flake.nix's outputs do not evaluate with stand-ins for nixpkgs: {e}")
        return
    for system, have in names["checks"].items():
        r.check(CHECKS <= set(have), f"checks.{system}: {', '.join(sorted(have))}", f"missing {sorted(CHECKS - set(have))}")
    for system, have in names["packages"].items():
        r.check(PACKAGES <= set(have), f"packages.{system}: {', '.join(sorted(have))}", f"missing {sorted(PACKAGES - set(have))}")
