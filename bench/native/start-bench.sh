#!/usr/bin/env bash
# Start latency of native/build/imageapi-init: time from spawning the helper
# to its ready line ("ok PID"), running /bin/true on the busybox fixture
# (squashfs + overlay, as bench/container-start does), without --cgroup,
# with a fresh cgroup2 directory, and with cgroup2 + a v1 pids directory.
#   bash bench/native/start-bench.sh [HELPER...]     # default: the built helper
#   START_BENCH_N=50 START_BENCH_WARMUP=5 START_BENCH_GAP_MS=100 (defaults;
#   the gap between starts matters: a cgroup migration is cheap only right
#   after another one, see start-bench.c)
# Several helpers (e.g. an old build copied aside) are measured in the same
# run, in a rotating order; HELPER@confined adds the agent's default
# confinement flags (capabilities, no_new_privs, seccomp, masked paths).  Needs root, busybox-static, squashfs-tools and
# a cgroup2 hierarchy at /sys/fs/cgroup/unified (hybrid) or /sys/fs/cgroup.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "start-bench.sh: needs root" >&2; exit 1; }
n=${START_BENCH_N:-50} warm=${START_BENCH_WARMUP:-5} gap=${START_BENCH_GAP_MS:-100}
make -s -C "$repo/native"
helpers=("$@")
[ ${#helpers[@]} -gt 0 ] || helpers=("$repo/native/build/imageapi-init")

work=$(mktemp -d /tmp/imageapi-start-bench.XXXXXX)
tag=imageapi-start-bench-$$
if [ -e /sys/fs/cgroup/unified/cgroup.procs ]; then v2root=/sys/fs/cgroup/unified; else v2root=/sys/fs/cgroup; fi
v2=$v2root/$tag v1=/sys/fs/cgroup/pids/$tag
loopdev="" mounts=()
cleanup() {
  set +e
  trap - EXIT INT TERM
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"; done
  [ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null
  for d in "$v2" "$v1"; do [ -d "$d" ] && rmdir "$d"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cc -O2 -Wall -Wextra -Werror -o "$work/start-bench" "$repo/bench/native/start-bench.c"
bash "$repo/test/fixtures/busybox-image.sh" "$work/bb.sqsh" >/dev/null
loopdev=$(losetup -f --show -r "$work/bb.sqsh")
mkdir -p "$work/sq" "$work/ov/upper" "$work/ov/work" "$work/ov/root" "$work/run"
mount -t squashfs -o ro "$loopdev" "$work/sq" && mounts+=("$work/sq")
mount -t overlay overlay -o "lowerdir=$work/sq,upperdir=$work/ov/upper,workdir=$work/ov/work" "$work/ov/root" &&
  mounts+=("$work/ov/root")
mkdir "$v2"
[ -d /sys/fs/cgroup/pids ] && mkdir "$v1" || v1=$v2  # no v1 pids: the third mode uses two v2 groups

echo "# $n runs after $warm warm-up, ${gap} ms apart; ms from spawn to the ready line"
"$work/start-bench" "$n" "$warm" "$gap" "$work/ov/root" "$work/run" "$v2" "$v1" "${helpers[@]}"
