#!/usr/bin/env bash
# Installs the Debian packages skiff's build and tests need, if any is missing:
#   libseccomp-dev, pkg-config  — building libcontainer (seccomp)
#   busybox-static, umoci, skopeo — building test and demo images offline, without Docker
#   runc, curl                  — peers and probes used by tests and benchmarks
#   docker-registry, apache2-utils, openssl — a real registry on loopback for the pull tests
#                                 (htpasswd for its Basic auth, openssl for its CA)
#   nginx                       — a real chart repository on loopback (tests/chart_sources.rs)
#   debootstrap                 — the Debian image of the slow pull test (SKIFF_E2E_SLOW=1)
#   mmdebstrap                  — Debian images with real software (Redis for the database test),
#                                 built through apt itself (it needs apt's package lists)
#   nftables, iproute2, wrk     — skiff's packet rules (the nft tool), network tests and benchmarks
#   pebble                      — Let's Encrypt's test CA (+ pebble-challtestsrv) for the ingress ACME tests
#   systemd                     — systemd-analyze, to verify the unit file (tests/systemd.rs)
#   zstd, sqlite3               — reading a backup's manifest and a store's schema version
#                                 (tests/backup.rs, tests/upgrade.rs)
#   python3-venv, nodejs, npm   — only when the machine has no Python venv or Node/npm of its own:
#                                 the official Python and JavaScript clients (tests/clients.rs,
#                                 installed pinned from PyPI and npm into the e2e cache)
# A Rust toolchain (rustc >= 1.89, with rustfmt and clippy) must already be installed.
set -euo pipefail
packages=(libseccomp-dev pkg-config busybox-static umoci skopeo runc curl docker-registry apache2-utils openssl nginx debootstrap mmdebstrap pebble nftables iproute2 wrk systemd zstd sqlite3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# mmdebstrap resolves packages through apt's lists: fetch them once on a fresh machine.
if ! compgen -G "/var/lib/apt/lists/*Packages*" >/dev/null; then
  apt-get update -qq
fi
if ! command -v cargo >/dev/null; then
  echo "error: no Rust toolchain (cargo) found; skiff needs rustc >= 1.89" >&2
  exit 1
fi
