#!/usr/bin/env bash
# Build a Debian bookworm image with some packages, offline of any container registry: mmdebstrap
# (through the machine's own apt configuration) + umoci + skopeo.
#
#   build-debian-image.sh OUT.tar NAME:TAG PACKAGE...
#
# Writes a `docker save`-style archive (docker-archive:) that `skiff image import` reads. The
# packages' maintainer scripts run, so their users exist with Debian's ids (redis-server → the
# `redis` user). apt's caches and lists are left out. Cmd is `bash` (or $IMAGE_CMD, one
# argument per line: the command an upstream image of that name runs); Env PATH is Debian's.
# Needs: mmdebstrap, umoci, skopeo (apt-get install -y mmdebstrap umoci skopeo) and an
# `apt-get update`d machine. Takes ~20-40 s.
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 OUT.tar NAME:TAG PACKAGE..." >&2; exit 2; }
out=$1
ref=$2
shift 2
packages=$(IFS=,; echo "$*")
case "$ref" in *:*) ;; *) ref="$ref:latest" ;; esac
for tool in mmdebstrap umoci skopeo; do
  command -v "$tool" >/dev/null || { echo "$0: $tool not found (apt-get install -y mmdebstrap umoci skopeo)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/skiff-debian-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
epoch=2024-01-01T00:00:00Z
oci=$tmp/oci
bundle=$tmp/bundle

# Debian's suite the host's apt knows (bookworm on the build machines).
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
mmdebstrap --quiet --variant=minbase --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  "$suite" "$tmp/rootfs.tar"

umoci init --layout "$oci"
umoci new --image "$oci:build"
umoci unpack --image "$oci:build" "$bundle" >/dev/null
tar -C "$bundle/rootfs" --numeric-owner -xpf "$tmp/rootfs.tar"
rm -f "$tmp/rootfs.tar"
rm -rf "$bundle/rootfs/var/lib/apt/lists/"* "$bundle/rootfs/var/cache/apt/"*.bin \
  "$bundle/rootfs/var/cache/apt/archives/"*.deb
umoci repack --image "$oci:build" --history.created "$epoch" \
  --history.created_by "skiff build-debian-image.sh $*" "$bundle"
cmd_args=()
while IFS= read -r word; do cmd_args+=(--config.cmd "$word"); done <<< "${IMAGE_CMD:-bash}"
umoci config --image "$oci:build" --created "$epoch" --history.created "$epoch" \
  --clear config.entrypoint --clear config.cmd --clear config.env \
  "${cmd_args[@]}" \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --architecture amd64 --os linux

mkdir -p "$(dirname "$out")"
# A part file of this build's own: two builds of the same image at once (two tests) each
# rename a whole archive into place.
part="$out.part.$$"
rm -f "$part"
skopeo copy --quiet "oci:$oci:build" "docker-archive:$part:$ref"
mv "$part" "$out"
echo "$out (docker archive of $ref with $*, $(du -k "$out" | cut -f1) KiB)" >&2
