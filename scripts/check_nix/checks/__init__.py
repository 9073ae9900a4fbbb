"""The checks, in the order they run; each module has TITLE and check(ctx)."""

from . import files, flake, pin, cargo, sandbox, image, module, neko, vmtests, workflows, selftest

ALL = {
    "self-test": selftest,
    "files": files,
    "flake": flake,
    "pin": pin,
    "cargo": cargo,
    "deskd-tests": sandbox,
    "image": image,
    "module": module,
    "neko": neko,
    "vm-tests": vmtests,
    "workflows": workflows,
}
