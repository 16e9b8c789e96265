#!/usr/bin/env bash
# The crun side of bench/container-start: runs inside its own private mount namespace
#   unshare -m --propagation private bash bench/crun-side.sh WORKDIR IMAGE HELPER CGROUP_MODE
# so that what it mounts (the image for crun, the cgroup hierarchy crun can use) is gone with the
# namespace. It mounts IMAGE (squashfs) read-only through a loop device plus an overlay on top —
# the same stack the agent builds — writes an OCI bundle, prints "ready", then serves one
# command per line on stdin and answers each with one line on stdout:
#   crun-run ID      → "us N": `crun run` of /bin/true, the whole life cycle (create, exec, exit, delete)
#   crun-detach ID   → "us N": `crun run --detach` (returns once the process is started), then an
#                      untimed `crun delete --force`
#   helper ID        → "us N": our native helper run the same way as `crun run` (no agent): until
#                      /bin/true has exited and the supervisor is gone
#   quit             → unmounts everything and exits
# Only the command itself is timed (bash's $EPOCHREALTIME, no fork), never this wrapper.
# CGROUP_MODE: v2 (default) puts the host's unified (cgroup2) hierarchy at /sys/fs/cgroup, so crun
# makes one cgroup2 group per container like the agent does; v1 only unmounts
# /sys/fs/cgroup/unified (crun refuses hybrid hosts) and crun makes one group per v1 controller.
set -euo pipefail
work=${1:?workdir} image=${2:?image} helper=${3:?helper} cgmode=${4:-v2}

merged=$work/crun/merged
cleanup() {
  set +e
  for id in $(crun list -q 2>/dev/null | grep '^imageapi-bench-'); do crun delete --force "$id" >/dev/null 2>&1; done
  umount "$merged" 2>/dev/null
  umount "$work/crun/lower" 2>/dev/null # the loop device was made with autoclear: it goes with this
}
trap cleanup EXIT

if [ "$cgmode" = v2 ]; then
  mount --bind /sys/fs/cgroup/unified /sys/fs/cgroup
elif mountpoint -q /sys/fs/cgroup/unified; then
  umount /sys/fs/cgroup/unified
fi

mkdir -p "$work"/crun/{lower,upper,work,merged,bundle}
mount -t squashfs -o ro,loop "$image" "$work/crun/lower"
mount -t overlay overlay -o "lowerdir=$work/crun/lower,upperdir=$work/crun/upper,workdir=$work/crun/work" "$merged"

# crun's default spec, adapted to do what the agent's containers do: /bin/true, no terminal, a
# writable root, the namespaces pid, ipc, uts, mount (no network namespace: ours has none by
# default), the mounts our helper makes (proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys; not
# crun's read-only /sys/fs/cgroup), no device cgroup rules (ours has none). crun keeps its default
# capability set, masked and read-only paths: those are part of what crun does for a container.
(cd "$work/crun/bundle" && rm -f config.json && crun spec)
node -e '
const fs = require("fs");
const [file, root] = process.argv.slice(1);
const c = JSON.parse(fs.readFileSync(file, "utf8"));
c.process.terminal = false;
c.process.args = ["/bin/true"];
c.root = { path: root, readonly: false };
c.hostname = "bench";
c.mounts = c.mounts.filter((m) => m.destination !== "/sys/fs/cgroup");
c.linux.namespaces = ["pid", "ipc", "uts", "mount"].map((type) => ({ type }));
delete c.linux.resources;
fs.writeFileSync(file, JSON.stringify(c, null, 1));
' "$work/crun/bundle/config.json" "$merged"
bundle=$work/crun/bundle
hlog=$work/crun/helper.log

# Times one command; on failure answers "error ..." instead (the caller stops).
timed() {
  local s e
  s=$EPOCHREALTIME
  if ! "$@" </dev/null >/dev/null; then echo "error failed: $*"; return 1; fi
  e=$EPOCHREALTIME
  echo "us $(( ${e/./} - ${s/./} ))"
}

echo ready
while read -r cmd id; do
  case $cmd in
    crun-run) timed crun run --bundle "$bundle" "imageapi-bench-$id" || true ;;
    crun-detach)
      timed crun run --detach --bundle "$bundle" "imageapi-bench-$id" || true
      crun delete --force "imageapi-bench-$id" >/dev/null 2>&1 || true ;;
    helper)
      timed "$helper" --root "$merged" --log "$hlog" --ns mnt,pid,uts,ipc --hostname bench -- /bin/true || true
      : >"$hlog" ;;
    quit) break ;;
    *) echo "error unknown command: $cmd" ;;
  esac
done
