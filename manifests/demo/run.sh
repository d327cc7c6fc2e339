#!/usr/bin/env bash
# Quick start: installs the build dependencies, builds skiff, builds the demo image offline
# (from Debian's busybox-static) and runs `skiff server` on this folder. Ctrl-C stops it all.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ "$(id -u)" != 0 ]; then
  echo "error: run as root: skiff creates containers, mounts and cgroups" >&2
  exit 1
fi
bash "$root/e2e/install-deps.sh"
cargo build --release --manifest-path "$root/Cargo.toml"
skiff="${CARGO_TARGET_DIR:-$root/target}/release/skiff"
data=${SKIFF_DEMO_DATA:-/var/lib/skiff-demo}
bash "$root/manifests/demo/build-image.sh" "$data/images/skiff-demo.tar" >/dev/null
cat <<TXT

  skiff is starting on the demo in $root/manifests/demo (data in $data).
  In another terminal:

      curl http://127.0.0.1:8080/                        # -> hello from skiff (a hostPort)
      curl http://127.0.0.1:8080/starts.txt              # the volume: a line per start
      curl -k --resolve hello.localhost:443:127.0.0.1 https://hello.localhost/
                                                         # the Ingress over HTTPS (self-signed)
      KUBECONFIG=/etc/skiff/kubeconfig.yaml kubectl get pods,svc,ingress,pvc
      $skiff get pods --data-dir $data

  Edit or delete $root/manifests/demo/demo.yaml and watch skiff converge.
  Ctrl-C stops skiff and its containers.

TXT
trap '"$skiff" killall --data-dir "$data" >/dev/null 2>&1 || true' EXIT
# Offline: no ACME directory, so the Ingress's TLS host gets a self-signed certificate at once.
"$skiff" server --data-dir "$data" --manifests "$root/manifests/demo" --images "$data/images" --config /dev/null \
  --acme-directory off &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' INT TERM
wait $server || true
