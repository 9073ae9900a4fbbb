"""The GitHub workflows, which cannot run here: they parse, every `run:` script is valid bash,
actions are pinned by version, publish.yml builds both systems on tags, and nix.yml runs on
every push and pull request with the steps issue 9 asks for, in order."""

import re
from pathlib import Path

import yaml

from ..context import Context
from .. import tools

TITLE = ".github/workflows: structure of publish.yml and nix.yml"

# nix.yml: what its steps must do, in this order (a regex over each step's uses/run text).
NIX_STEPS = [
    ("check out the repository", r"actions/checkout@"),
    ("give the runner's user /dev/kvm for the VM tests", r"/dev/kvm|kvm4all|MODE=\"0666\""),
    ("install Nix with the kvm system feature", r"(cachix/install-nix-action|DeterminateSystems/nix-installer-action)@"),
    ("compute missing neko pull hashes", r"update-neko-base\.sh|nix-prefetch-docker"),
    ("nix flake check", r"nix flake check"),
    ("build .#image", r"nix build\b.*\.#(packages\.[a-z0-9_-]+\.)?image\b"),
    ("load it into Docker", r"docker load"),
    ("start it", r"docker run\b"),
    ("check /healthz", r"/healthz"),
    ("a screenshot through the agent API", r"/api/screenshot"),
    ("deskd ctl through docker exec", r"docker exec\b.*deskd ctl"),
    ("docker stop with exit code 0 within the grace period", r"docker stop -t[\s\S]*ExitCode"),
    ("fail with the neko lines to commit", r"neko-base\.json[\s\S]*exit 1"),
]


def triggers(doc: dict) -> dict:
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on:` key as True
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {k: None for k in on}
    return on or {}


def steps_of(doc: dict) -> list[dict]:
    return [s for job in (doc.get("jobs") or {}).values() for s in (job.get("steps") or [])]


def step_text(step: dict) -> str:
    return "\n".join(str(step.get(k, "")) for k in ("uses", "run", "with"))


def pinned_problems(name: str, doc: dict) -> list[str]:
    p = []
    for s in steps_of(doc):
        uses = s.get("uses")
        if uses and not re.search(r"@(v[0-9]+(\.[0-9]+)*|[0-9a-f]{40})$", uses):
            p.append(f"{name}: {uses} is not pinned to a version tag or commit")
    return p


def bash_problems(name: str, doc: dict) -> list[str]:
    """bash -n over each run script, with ${{ ... }} expressions replaced by a word."""
    p = []
    for i, s in enumerate(steps_of(doc)):
        script = s.get("run")
        if not script:
            continue
        text = re.sub(r"\$\{\{.*?\}\}", "X", script)
        r = tools.run(["bash", "-n"], input=text)
        if r.returncode != 0:
            p.append(f"{name}: step {i + 1} ({s.get('name', s.get('uses', ''))}): {r.stderr.strip()}")
    return p


def publish_problems(text: str, doc: dict) -> list[str]:
    p = []
    on = triggers(doc)
    if "tags" not in (on.get("push") or {}):
        p.append("publish.yml must run on tag pushes")
    if "REGISTRY" not in (doc.get("env") or {}):
        p.append("publish.yml: the registry must be named in the top-level env")
    if text.count("ghcr.io") + text.count("docker.io") + text.count("quay.io") > 1:
        p.append("publish.yml: a registry host is named more than once")
    for system in ("x86_64-linux", "aarch64-linux"):
        if system not in text:
            p.append(f"publish.yml: the {system} image is not built")
    return p


def nix_problems(doc: dict) -> list[str]:
    p = []
    on = triggers(doc)
    for event in ("push", "pull_request"):
        if event not in on:
            p.append(f"nix.yml does not run on {event}")
        elif on[event] and any(k in on[event] for k in ("branches", "paths", "tags", "branches-ignore", "paths-ignore")):
            p.append(f"nix.yml: {event} is filtered ({on[event]}), it must run on every {event}")
    steps = [step_text(s) for s in steps_of(doc)]
    at = 0
    for what, pattern in NIX_STEPS:
        found = next((i for i in range(at, len(steps)) if re.search(pattern, steps[i])), None)
        if found is None:
            where = "at all" if not any(re.search(pattern, s) for s in steps) else "in order"
            p.append(f"nix.yml: no step to {what} ({where})")
        else:
            at = found
    install = next((s for s in steps_of(doc) if re.search(NIX_STEPS[2][1], str(s.get("uses", "")))), {})
    if "kvm" not in str(install.get("with", "")):
        p.append("nix.yml: the Nix installer's configuration does not add the kvm system feature")
    runners = [str(j.get("runs-on", "")) for j in (doc.get("jobs") or {}).values()]
    if not any(r.startswith("ubuntu-") and "arm" not in r for r in runners):
        p.append(f"nix.yml: no x86_64 Ubuntu runner (KVM for the VM tests): {runners}")
    return p


def check(ctx: Context) -> None:
    r = ctx.report
    r.step(TITLE)
    docs = {}
    for name in ("publish.yml", "nix.yml"):
        path = ctx.root / ".github/workflows" / name
        try:
            text = path.read_text()
            docs[name] = (text, yaml.safe_load(text))
            r.ok(f"{name} parses")
        except (OSError, yaml.YAMLError) as e:
            r.bad(f"{name}: {e}")
    for name, (_, doc) in docs.items():
        r.problems(f"{name}: every run script is valid bash; every action pinned by version",
                   bash_problems(name, doc) + pinned_problems(name, doc))
    if "publish.yml" in docs:
        r.problems("publish.yml: tag-triggered, both systems, registry named once", publish_problems(*docs["publish.yml"]))
    if "nix.yml" in docs:
        r.problems(f"nix.yml: every push and pull request; {'; '.join(w for w, _ in NIX_STEPS)}",
                   nix_problems(docs["nix.yml"][1]))
