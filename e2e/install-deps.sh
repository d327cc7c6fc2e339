#!/usr/bin/env bash
# Installs the Debian packages skiff's build and tests need, if any is missing:
#   libseccomp-dev, pkg-config  — building libcontainer (seccomp)
#   busybox-static, umoci, skopeo — building test and demo images offline, without Docker
#   runc, curl                  — peers and probes used by tests and benchmarks
# A Rust toolchain (rustc >= 1.88, with rustfmt and clippy) must already be installed.
set -euo pipefail
packages=(libseccomp-dev pkg-config busybox-static umoci skopeo runc curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "error: no Rust toolchain (cargo) found; skiff needs rustc >= 1.88" >&2
  exit 1
fi
