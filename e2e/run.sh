#!/usr/bin/env bash
# The whole test suite: installs what the tests need, builds skiff, and runs every unit and
# end-to-end test (the e2e tests start the real binary, as root, with real containers).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if [ "$(id -u)" != 0 ]; then
  echo "error: run the tests as root: they create containers, mounts and cgroups" >&2
  exit 1
fi
bash e2e/install-deps.sh
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --workspace --bins
export SKIFF_BIN="$target/debug/skiff"
cargo test --workspace -- --test-threads=2
