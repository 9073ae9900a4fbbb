"""The VM tests: nixos-tests/browser.py compiles; the test scripts, rendered from the .nix files
with stand-ins (runNixOSTest lints them only at build time, after Nix's escaping of {{ }}, \\"
and ${...}), compile, use no undefined name and no f-string without a placeholder (the
driver's pyflakes rejects those); the image test covers what the README promises."""

import ast
import builtins

from ..context import Context
from .. import tools

TITLE = "the VM tests: scripts render, compile, name nothing undefined, cover the promises"

# What the NixOS test driver puts in a test script's globals, besides one object per node.
DRIVER = {"start_all", "subtest", "join_all", "retry", "polling_condition", "serial_stdout_on",
          "serial_stdout_off", "driver", "machines", "vlans", "log", "t", "Machine",
          "run_tests", "create_machine", "test_script", "dump_machine_ssh"}
# The image test must exercise these (README and issue 9): text each rendered script holds.
IMAGE_MUST = {
    "a screenshot through the agent API": "/api/screenshot",
    "deskd ctl through docker exec, without the container's DESKD_TOKEN": "env -u DESKD_TOKEN deskd ctl screenshot",
    "the token directory deskd writes": "/run/deskd",
    "docker stop within the grace period, exit code 0": "docker stop -t",
    "a derived image on another display": "docker exec derived printenv DISPLAY)\\\" = :42",
}


def script_problems(name: str, source: str, nodes: list[str]) -> list[str]:
    try:
        tree = ast.parse(source, f"{name}.py")
        compile(tree, f"{name}.py", "exec")
    except SyntaxError as err:
        return [f"{name}: {err}"]
    defined = set(dir(builtins)) | DRIVER | set(nodes)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            defined.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            defined.add(node.name)
    specs = {id(n.format_spec) for n in ast.walk(tree) if isinstance(n, ast.FormattedValue) and n.format_spec}
    p = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in defined:
            p.append(f"{name}.py:{node.lineno}: undefined name {node.id!r}")
        if (isinstance(node, ast.JoinedStr) and id(node) not in specs
                and not any(isinstance(v, ast.FormattedValue) for v in node.values)):
            p.append(f"{name}.py:{node.lineno}: f-string without placeholders")
    return p


def check(ctx: Context) -> None:
    r = ctx.report
    r.step(TITLE)
    browser = ctx.root / "nixos-tests/browser.py"
    try:
        compile(browser.read_text(), str(browser), "exec")  # compile() only: no __pycache__
        r.ok("nixos-tests/browser.py compiles")
    except SyntaxError as e:
        r.bad(f"nixos-tests/browser.py: {e}")
    try:
        rendered = ctx.nix.stub("vmtests", pkgsDir=str(ctx.stand_in_pkgs()))
    except tools.ToolError as e:
        r.bad(f"the VM tests do not evaluate with stand-ins: {e}")
        return
    r.ok(f"nixos-tests/stream.nix and image.nix evaluate with stand-ins (nodes: {rendered['nodes']})")
    problems = [p for test, nodes in rendered["nodes"].items() for p in script_problems(test, rendered[test], nodes)]
    r.problems("both scripts compile; every name is defined (driver globals, nodes, their own)", problems)
    missing = [what for what, text in IMAGE_MUST.items() if text not in rendered["image"]]
    r.problems(f"the image test covers: {'; '.join(IMAGE_MUST)}", [f"the image VM test does not test {m}" for m in missing])
