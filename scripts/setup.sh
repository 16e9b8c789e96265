#!/usr/bin/env bash
# Everything a fresh machine of this kind needs before the agent runs or the tests run:
# Debian packages, npm dependencies, the TypeScript build and the native helper.
#   scripts/setup.sh [--tests]    (--tests adds what only the test suite needs)
set -euo pipefail
cd "$(dirname "$0")/.."
# nftables: the guard that keeps containers from connecting to the agent.
# xz-utils, zstd, bzip2: decompressing images pulled from image servers.
want=(squashfs-tools util-linux mount e2fsprogs nftables xz-utils zstd bzip2)
if [ "${1:-}" = "--tests" ]; then
  # busybox: the test image; debootstrap: the systemd image; Ceph: a real cluster for the RBD tests;
  # openssl: certificates for the https tests; jq: the README walkthrough takes ids from answers with it.
  # systemd (systemd-notify) and python3 (a unix datagram NOTIFY_SOCKET listener): the sd_notify test.
  # nginx: the image servers (simplestreams, IMGAPI, https files) of the image tests.
  want+=(busybox-static iproute2 procps psmisc debootstrap openssl jq systemd python3 ceph-mon ceph-osd ceph-common rbd-fuse nginx)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
# The test-only native programs (C unit tests, the syscall probe the confinement tests run).
if [ "${1:-}" = "--tests" ]; then
  make -s -C native test-build
fi
