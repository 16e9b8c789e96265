#!/usr/bin/env bash
# The crun side of the benchmarks (bench/lib/crun.ts): runs inside its own private mount namespace
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
#   stack-run ID     → "us N": the whole stack as a shell script: losetup of IMAGE, mount of the
#                      squashfs, mount of an overlay on it, `crun run` of /bin/true on the overlay,
#                      then the teardown (umount ×2, losetup --detach, rm of the directories)
#   many-run N P     → "us N": N × `crun run --detach` of /bin/sleep 1000 on the one overlay,
#                      P at a time (xargs -P), until every one is started; then checks (untimed)
#                      that N are running
#   many-delete N P  → "us N": `crun delete --force` of those N, P at a time
#   quit             → unmounts everything and exits
# Only the command itself is timed (bash's $EPOCHREALTIME, no fork), never this wrapper.
# CGROUP_MODE: v2 (default) puts the host's unified (cgroup2) hierarchy at /sys/fs/cgroup, so crun
# makes one cgroup2 group per container like the agent does; v1 only unmounts
# /sys/fs/cgroup/unified (crun refuses hybrid hosts) and crun makes one group per v1 controller.
set -euo pipefail
work=${1:?workdir} image=${2:?image} helper=${3:?helper} cgmode=${4:-v2}

merged=$work/crun/merged
stack=$work/crun/stack
stack_dev=
cleanup() {
  set +e
  for id in $(crun list -q 2>/dev/null | grep '^imageapi-bench-'); do crun delete --force "$id" >/dev/null 2>&1; done
  umount "$merged" 2>/dev/null
  umount "$work/crun/lower" 2>/dev/null # the loop device was made with autoclear: it goes with this
  # a stack-run interrupted half-way
  umount "$stack/merged" 2>/dev/null
  umount "$stack/lower" 2>/dev/null
  [ -n "$stack_dev" ] && losetup --detach "$stack_dev" 2>/dev/null
}
trap cleanup EXIT

if [ "$cgmode" = v2 ]; then
  mount --bind /sys/fs/cgroup/unified /sys/fs/cgroup
elif mountpoint -q /sys/fs/cgroup/unified; then
  umount /sys/fs/cgroup/unified
fi

mkdir -p "$work"/crun/{lower,upper,work,merged,bundle,bundle-sleep,bundle-stack}
mount -t squashfs -o ro,loop "$image" "$work/crun/lower"
mount -t overlay overlay -o "lowerdir=$work/crun/lower,upperdir=$work/crun/upper,workdir=$work/crun/work" "$merged"

# crun's default spec, adapted to do what the agent's containers do: /bin/true, no terminal, a
# writable root, the namespaces pid, ipc, uts, mount (no network namespace: ours has none by
# default), the mounts our helper makes (proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys; not
# crun's read-only /sys/fs/cgroup), no device cgroup rules (ours has none). crun keeps its default
# capability set, masked and read-only paths: those are part of what crun does for a container.
# Three bundles: /bin/true on the overlay (bundle), /bin/sleep 1000 on it (bundle-sleep, many-run),
# /bin/true on the overlay that each stack-run mounts anew (bundle-stack).
(cd "$work/crun/bundle" && rm -f config.json && crun spec)
cp "$work/crun/bundle/config.json" "$work/crun/bundle-sleep/config.json"
cp "$work/crun/bundle/config.json" "$work/crun/bundle-stack/config.json"
spec() {
node -e '
const fs = require("fs");
const [file, root, ...args] = process.argv.slice(1);
const c = JSON.parse(fs.readFileSync(file, "utf8"));
c.process.terminal = false;
c.process.args = args;
c.root = { path: root, readonly: false };
c.hostname = "bench";
c.mounts = c.mounts.filter((m) => m.destination !== "/sys/fs/cgroup");
c.linux.namespaces = ["pid", "ipc", "uts", "mount"].map((type) => ({ type }));
delete c.linux.resources;
fs.writeFileSync(file, JSON.stringify(c, null, 1));
' "$@"
}
spec "$work/crun/bundle/config.json" "$merged" /bin/true
spec "$work/crun/bundle-sleep/config.json" "$merged" /bin/sleep 1000
spec "$work/crun/bundle-stack/config.json" "$stack/merged" /bin/true
bundle=$work/crun/bundle
hlog=$work/crun/helper.log

# The agent's nested POST /container + DELETE as a shell script: the same kernel objects, made
# and torn down in the same order (read-only loop device, squashfs, overlay with fresh upper and
# work directories, the container, then everything undone and the directories removed).
stack_run() {
  stack_dev=$(losetup --find --show --read-only -- "$image") || return 1
  mkdir -p "$stack"/{lower,upper,work,merged} || return 1
  mount -t squashfs -o ro "$stack_dev" "$stack/lower" || return 1
  mount -t overlay overlay -o "lowerdir=$stack/lower,upperdir=$stack/upper,workdir=$stack/work" "$stack/merged" || return 1
  crun run --bundle "$work/crun/bundle-stack" "imageapi-bench-stack-$1" || return 1
  umount "$stack/merged" || return 1
  umount "$stack/lower" || return 1
  losetup --detach "$stack_dev" || return 1
  stack_dev=
  rm -rf "$stack"
}
many_run() {
  seq -f "imageapi-bench-many-%g" 1 "$1" | xargs -P "$2" -n 1 crun run --detach --bundle "$work/crun/bundle-sleep"
}
many_delete() {
  seq -f "imageapi-bench-many-%g" 1 "$1" | xargs -P "$2" -n 1 crun delete --force
}

# Times one command; on failure answers "error ..." instead (the caller stops).
timed() {
  local s e
  s=$EPOCHREALTIME
  if ! "$@" </dev/null >/dev/null; then echo "error failed: $*"; return 1; fi
  e=$EPOCHREALTIME
  echo "us $(( ${e/./} - ${s/./} ))"
}

echo ready
while read -r cmd id; do  # id: the rest of the line
  case $cmd in
    crun-run) timed crun run --bundle "$bundle" "imageapi-bench-$id" || true ;;
    crun-detach)
      timed crun run --detach --bundle "$bundle" "imageapi-bench-$id" || true
      crun delete --force "imageapi-bench-$id" >/dev/null 2>&1 || true ;;
    helper)
      timed "$helper" --root "$merged" --log "$hlog" --ns mnt,pid,uts,ipc --hostname bench -- /bin/true || true
      : >"$hlog" ;;
    stack-run) timed stack_run "$id" || true ;;
    many-run)
      read -r n p <<<"$id"
      if out=$(timed many_run "$n" "$p"); then
        up=$(crun list 2>/dev/null | awk '$1 ~ /^imageapi-bench-many-/ && $3 == "running"' | wc -l)
        if [ "$up" -eq "$n" ]; then echo "$out"; else echo "error only $up of $n crun containers running"; fi
      else echo "$out"; fi ;;
    many-delete)
      read -r n p <<<"$id"
      timed many_delete "$n" "$p" || true ;;
    quit) break ;;
    *) echo "error unknown command: $cmd" ;;
  esac
done
