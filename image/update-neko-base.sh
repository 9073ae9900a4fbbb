#!/usr/bin/env bash
# Refresh image/neko-base.json: the digest of neko's base image and the Nix hash of the
# docker-archive that dockerTools.pullImage makes of it, for every architecture we build.
#
#   image/update-neko-base.sh                # re-hash the pinned digest
#   image/update-neko-base.sh sha256:<hex>   # pin another digest, then hash it
#   image/update-neko-base.sh <tag>          # resolve a tag (e.g. latest) to its digest first
#
# Needs nix-prefetch-docker, jq, and skopeo for a tag, all from this flake's locked nixpkgs
# (`nix develop --command image/update-neko-base.sh`): the hash is of the archive skopeo
# writes, so it must be the skopeo the build's pullImage uses. Run it where the registry
# is reachable; the hash depends on the image name and tag written into the archive, so
# imageName and finalImageTag in the JSON must stay what pullImage is given (image/neko.nix).
set -euo pipefail

file="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/neko-base.json"

die() { echo "update-neko-base: $*" >&2; exit 1; }

for tool in jq nix-prefetch-docker; do
  command -v "$tool" >/dev/null || die "$tool not found (try: nix develop --command $0; the tools must come from the flake's locked nixpkgs, whose skopeo the build uses)"
done

name="$(jq -er .imageName "$file")" || die "no imageName in $file"
final_tag="$(jq -er .finalImageTag "$file")" || die "no finalImageTag in $file"
digest="$(jq -er .imageDigest "$file")" || die "no imageDigest in $file"

case "${1:-}" in
  "") ;;
  sha256:*) digest="$1" ;;
  *)
    command -v skopeo >/dev/null || die "skopeo is needed to resolve tag $1"
    digest="$(skopeo inspect --raw "docker://$name:$1" | sha256sum | cut -d' ' -f1)"
    digest="sha256:$digest"
    ;;
esac
[[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "not an image digest: $digest"

to_sri() {
  case "$1" in
    sha256-*) printf '%s\n' "$1" ;;
    *) nix --extra-experimental-features nix-command hash to-sri --type sha256 "$1" ;;
  esac
}

hashes='{}'
for arch in amd64 arm64; do
  echo "update-neko-base: prefetching $name@$digest for linux/$arch" >&2
  out="$(nix-prefetch-docker --json --quiet --os linux --arch "$arch" \
    --image-name "$name" --image-digest "$digest" \
    --final-image-name "$name" --final-image-tag "$final_tag")" \
    || die "nix-prefetch-docker failed for $arch"
  # Newer nix-prefetch-docker prints `hash` (SRI), older ones `sha256` (base32).
  raw="$(jq -er '.hash // .sha256' <<<"$out")" || die "no hash in nix-prefetch-docker output for $arch"
  sri="$(to_sri "$raw")"
  hashes="$(jq --arg a "$arch" --arg h "$sri" '. + {($a): $h}' <<<"$hashes")"
done

tmp="$(mktemp "$file.XXXXXX")"
jq --arg d "$digest" --argjson h "$hashes" '.imageDigest = $d | .hash = $h' "$file" >"$tmp"
mv "$tmp" "$file"
echo "update-neko-base: wrote $file" >&2
jq . "$file"
