#!/usr/bin/env bash
# Builds the demo image `skiff-demo:latest` as a `docker save`-style archive, offline, from
# Debian's busybox-static (needs: apt-get install -y busybox-static umoci skopeo).
#
#   manifests/demo/build-image.sh [OUT.tar]
#
# OUT defaults to /var/lib/skiff/images/skiff-demo.tar: skiff's default images folder, which
# `skiff server` imports at start and whenever an archive appears. Or import it by hand:
#   skiff image import OUT.tar
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-/var/lib/skiff/images/skiff-demo.tar}
mkdir -p "$(dirname "$out")"
# Build next to the destination, then rename: skiff never sees a half-written archive.
tmp="$(dirname "$out")/.skiff-demo.$$.tar.tmp"
trap 'rm -f "$tmp"' EXIT
"$here/../../e2e/images/build-busybox-image.sh" "$tmp" skiff-demo:latest
mv -f "$tmp" "$out"
echo "skiff-demo:latest -> $out"
