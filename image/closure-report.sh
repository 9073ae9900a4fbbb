# The image's closure report, the build command of passthru.closureReport (image/default.nix).
#
# With __structuredAttrs, exportReferencesGraph.closure puts every store path of the closure
# into the attributes' JSON, each with its NAR size. Writes to $out and the build log: the
# total, then the 25 largest paths. Fails if a path's name starts with a word of $forbidden
# followed by a version (e.g. "xorg-server" where the Xvfb-only package should be used).
# Needs jq. scripts/check-nix runs this file on a made-up attributes file.
set -euo pipefail

attrs="${NIX_ATTRS_JSON_FILE:-${NIX_BUILD_TOP:-.}/.attrs.json}"

jq -r '
  def mib: (. / 1048576 * 10 | round) / 10 | tostring + " MiB";
  .closure as $c
  | "total: \($c | map(.narSize) | add | mib) in \($c | length) store paths",
    "largest:",
    ($c | sort_by(-.narSize) | .[:25][] | "  \(.narSize | mib)\t\(.path)")
' "$attrs" | tee "$out"

status=0
for name in ${forbidden:-}; do
  if hits="$(jq -r --arg n "$name" '.closure[].path | select(test("^[^-]*-" + $n + "-[0-9]"))' "$attrs")" && [ -n "$hits" ]; then
    printf 'closure-report: %s must not be in the image:\n%s\n' "$name" "$hits" >&2
    status=1
  fi
done
exit "$status"
