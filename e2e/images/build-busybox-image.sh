#!/usr/bin/env bash
# Build a tiny busybox image without Docker, from Debian's busybox-static, with umoci + skopeo.
#
#   build-busybox-image.sh OUT.tar NAME:TAG [--oci] [--add SRC:/DEST]...
#
# Writes a `docker save`-style archive (docker-archive:) by default, or an OCI archive
# (oci-archive:) with --oci. The image:
#   /bin/busybox + applet symlinks, /www/index.html ("hello from skiff"),
#   /etc/passwd + /etc/group with root, nobody and app (uid 1000),
#   Entrypoint unset, Cmd ["httpd","-f","-p","8080","-h","/www"], WorkingDir /www,
#   Env PATH=/bin, GREETING=image.
# Needs: busybox-static, umoci, skopeo (apt-get install -y busybox-static umoci skopeo).
set -euo pipefail

usage() { echo "usage: $0 OUT.tar NAME:TAG [--oci] [--add SRC:/DEST]..." >&2; exit 2; }
[ $# -ge 2 ] || usage
out=$1
ref=$2
format=docker
extra=()
shift 2
while [ $# -gt 0 ]; do
  case "$1" in
    --oci) format=oci ;;
    --add) [ $# -ge 2 ] || usage; extra+=("$2"); shift ;;
    *) usage ;;
  esac
  shift
done
case "$ref" in *:*) ;; *) ref="$ref:latest" ;; esac

for tool in umoci skopeo; do
  command -v "$tool" >/dev/null || { echo "$0: $tool not found (apt-get install -y busybox-static umoci skopeo)" >&2; exit 1; }
done
# The busybox copied into the image must be static (the image has no libc): Debian's
# busybox-static, not the dynamically linked busybox package.
is_static() { { ldd "$1" 2>&1 || true; } | grep -qE 'not a dynamic executable|statically linked'; }
busybox=""
for candidate in /bin/busybox /usr/bin/busybox; do
  if [ -x "$candidate" ] && is_static "$candidate"; then
    busybox=$candidate; break
  fi
done
[ -n "$busybox" ] || { echo "$0: no static busybox found (apt-get install -y busybox-static)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/skiff-busybox-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

epoch=2024-01-01T00:00:00Z
oci=$tmp/oci
bundle=$tmp/bundle
umoci init --layout "$oci"
umoci new --image "$oci:build"
umoci unpack --image "$oci:build" "$bundle" >/dev/null
root=$bundle/rootfs
mkdir -p "$root"/{bin,etc,www,tmp,proc,sys,dev,root,home/app}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] && continue
  ln -s busybox "$root/bin/$applet"
done
# The applets the tests rely on must exist, whatever this busybox build offers.
for applet in sh httpd echo cat sleep ls wget env id hostname timeout; do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
printf 'hello from skiff\n' >"$root/www/index.html"
for pair in ${extra[@]+"${extra[@]}"}; do
  install -D -m 0755 "${pair%%:*}" "$root${pair#*:}"
done
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
app:x:1000:
nogroup:x:65534:
GROUP
chown 1000:1000 "$root/home/app"
# Fixed timestamps so that two builds give the same layer.
find "$root" -exec touch -h -d "$epoch" {} +
# One layer, entries relative to the rootfs ("./", "bin/busybox", ...).
umoci repack --image "$oci:build" --history.created "$epoch" \
  --history.created_by "skiff build-busybox-image.sh" "$bundle"
umoci config --image "$oci:build" --created "$epoch" --history.created "$epoch" \
  --clear config.entrypoint --clear config.cmd --clear config.env \
  --config.cmd httpd --config.cmd -f --config.cmd -p --config.cmd 8080 --config.cmd -h --config.cmd /www \
  --config.workingdir /www --config.env PATH=/bin --config.env GREETING=image \
  --config.exposedports 8080/tcp --architecture amd64 --os linux

mkdir -p "$(dirname "$out")"
rm -f "$out"
if [ "$format" = oci ]; then
  skopeo copy --quiet "oci:$oci:build" "oci-archive:$out:$ref"
else
  skopeo copy --quiet "oci:$oci:build" "docker-archive:$out:$ref"
fi
echo "$out ($format archive of $ref, $(du -k "$out" | cut -f1) KiB)" >&2
