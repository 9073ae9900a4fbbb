"""scripts/check-nix: offline checks of the repository's Nix side (flake, image, module, VM tests,
workflows) with stand-ins where Nix itself cannot build here.

Layout: `report` prints the ok/FAIL/SKIP lines, `tools` runs programs (nix-instantiate against a
dummy store, cargo, git), `toml` renders settings as pkgs.formats.toml does, `stubs/` holds the
Nix stand-ins for nixpkgs, `checks/` one module per area, `main` runs them in order; `tests/`
are the checker's own unit tests (`python3 -m unittest discover -s scripts/check_nix/tests`).
"""
