#!/bin/bash
# Install contrib/imageapi.service as /etc/systemd/system/imageapi.service, with ExecStart
# pointing at the imageapi-server on PATH (npm install -g puts it there), then enable and start it.
#   bash contrib/install-systemd.sh [--no-start]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(command -v imageapi-server || true)
[ -n "$bin" ] || { echo "imageapi-server is not on PATH: npm install -g the package first" >&2; exit 1; }
sed "s|^ExecStart=/usr/bin/imageapi-server|ExecStart=$bin|" "$here/imageapi.service" > /etc/systemd/system/imageapi.service
chmod 0644 /etc/systemd/system/imageapi.service
systemctl daemon-reload
if [ "${1:-}" != "--no-start" ]; then systemctl enable --now imageapi.service; fi
echo "installed /etc/systemd/system/imageapi.service (ExecStart=$bin)"
