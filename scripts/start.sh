#!/usr/bin/env bash
# Set up (Debian packages, npm, build: idempotent, fast when already done) and start the agent
# in the foreground with the defaults: HTTP on 127.0.0.1:8080, the unix socket
# /var/run/imageapi.sock, run-dir /var/run/imageapi. Extra arguments go to imageapi-server.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "start.sh: the agent must run as root (it attaches and mounts)" >&2; exit 1; }
bash scripts/setup.sh
exec node bin/imageapi-server.js "$@"
