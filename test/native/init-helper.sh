#!/usr/bin/env bash
# Real-kernel tests of native/build/imageapi-init (the container init helper).
#   bash test/native/init-helper.sh [--fallback]
# Needs root, busybox-static and squashfs-tools.  Builds the helper, its test
# build and the C unit tests (make -C native all test-build), runs the unit
# tests (their counts are added to ours), builds the busybox fixture into a
# temporary directory, starts containers and checks the log, the
# ready/pidfile/status protocol, namespaces, mounts and cgroups.  Everything
# it creates (processes, mounts, loop devices, cgroup directories, temporary
# files) is removed on exit, also after a failure.
# Last line of output: "N passed, M failed"; exit status 1 if M > 0.
# The fallback path (plain clone, the supervisor writes cgroup.procs), as on
# kernels before 5.7, is tested with the test build native/build/test/
# imageapi-init (-DIMAGEAPI_TEST_HOOKS: clone3 fails with ENOSYS); with
# --fallback every test runs on that build.  The strace checks of test 11
# always look at both paths.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
prod_helper=$repo/native/build/imageapi-init
test_helper=$repo/native/build/test/imageapi-init
helper=$prod_helper
case "${1:-}" in
  "") ;;
  --fallback) helper=$test_helper ;;
  *) echo "usage: init-helper.sh [--fallback]" >&2; echo "0 passed, 1 failed"; exit 1 ;;
esac

if [ "$(id -u)" != 0 ]; then
  echo "init-helper.sh: needs root" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1${2:+: $2}"; }
# check NAME COMMAND...: passes when COMMAND succeeds.
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
# check_eq NAME WANT GOT
check_eq() { if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "want [$2], got [$3]"; fi; }
# check_grep NAME REGEX FILE
check_grep() { if grep -Eq -- "$2" "$3" 2>/dev/null; then ok "$1"; else bad "$1" "no /$2/ in $3"; fi; }

work=$(mktemp -d /tmp/imageapi-init-test.XXXXXX)
tag=imageapi-test-$$
containers=() supervisors=() cgroups=() mounts=() loopdev=""

cleanup() {
  local p cg m i
  trap - EXIT INT TERM
  for p in "${containers[@]}"; do kill -9 "$p" 2>/dev/null; done
  for cg in "${cgroups[@]}"; do
    [ -e "$cg/cgroup.kill" ] && echo 1 >"$cg/cgroup.kill" 2>/dev/null
    [ -e "$cg/cgroup.procs" ] && while read -r p; do kill -9 "$p" 2>/dev/null; done <"$cg/cgroup.procs"
  done
  # The supervisors exit once their container is gone.
  for i in $(seq 50); do
    alive=0
    for p in "${supervisors[@]}"; do [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.05
  done
  for p in "${supervisors[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  # Children first (reverse order of creation).
  for ((i = ${#cgroups[@]} - 1; i >= 0; i--)); do
    for _ in $(seq 20); do rmdir "${cgroups[i]}" 2>/dev/null && break; [ -d "${cgroups[i]}" ] || break; sleep 0.05; done
  done
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"; done
  [ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ setup
make -s -C "$repo/native" all test-build >"$work/make.out" 2>&1 ||
  { cat "$work/make.out"; bad "build" "make -C native all test-build failed"; echo "$passed passed, $failed failed"; exit 1; }
ok "make -C native all test-build"

# The C unit tests: their lines, then their counts added to ours (a crash,
# without the closing line, counts as one failure).
echo "# unit tests: native/build/test/args-test"
"$repo/native/build/test/args-test" >"$work/unit.out" 2>&1
grep -Ev '^[0-9]+ passed, [0-9]+ failed$' "$work/unit.out"
unit=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/unit.out" | tail -1)
if [[ $unit =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
  passed=$((passed + BASH_REMATCH[1])) failed=$((failed + BASH_REMATCH[2]))
else
  bad "args-test" "no closing \"N passed, M failed\" line"
fi

bash "$repo/test/fixtures/busybox-image.sh" "$work/bb.sqsh" "$work/bbroot" >/dev/null ||
  { bad "fixture" "busybox-image.sh failed"; echo "$passed passed, $failed failed"; exit 1; }

loopdev=$(losetup -f --show -r "$work/bb.sqsh")
mkdir -p "$work/sq" "$work/ov/upper" "$work/ov/work" "$work/ov/root"
mount -t squashfs -o ro "$loopdev" "$work/sq" && mounts+=("$work/sq")
mount -t overlay overlay -o "lowerdir=$work/sq,upperdir=$work/ov/upper,workdir=$work/ov/work" "$work/ov/root" &&
  mounts+=("$work/ov/root")
# A second overlay whose /proc is a symlink pointing out of the image.
mkdir -p "$work/ov2/upper" "$work/ov2/work" "$work/ov2/root"
mount -t overlay overlay -o "lowerdir=$work/sq,upperdir=$work/ov2/upper,workdir=$work/ov2/work" "$work/ov2/root" &&
  mounts+=("$work/ov2/root")
rmdir "$work/ov2/root/proc" && ln -s "$work/outside" "$work/ov2/root/proc"
mkdir -p "$work/outside"

v2=/sys/fs/cgroup/unified/$tag v1=/sys/fs/cgroup/pids/$tag
for d in "$v2" "$v2/c" "$v2/s" "$v2/f" "$v2/b" "$v2/o" "$v2/e" "$v1" "$v1/c" "$v1/b" "$v1/o"; do
  mkdir "$d" && cgroups+=("$d")
done

# start NAME HELPER-ARGS... -- COMMAND...: runs $helper in the
# background with --log/--pidfile/--status/--ready-fd in $work/NAME and
# waits for its ready line.  Sets D, SPID, READY, CPID.
# start_with HELPER NAME ...: the same with another helper binary.
start() { start_with "$helper" "$@"; }
start_with() {
  local bin=$1 name=$2; shift 2
  D=$work/$name
  mkdir -p "$D"
  mkfifo "$D/ready.fifo"
  "$bin" --log "$D/log" --pidfile "$D/pid" --status "$D/status" --ready-fd 3 "$@" \
    3>"$D/ready.fifo" </dev/null >"$D/out" 2>&1 &
  SPID=$!
  supervisors+=("$SPID")
  # cat ends when the writer closes the fd: one line, then closed.
  timeout 5 cat "$D/ready.fifo" >"$D/ready"
  READY=$(cat "$D/ready")
  CPID=""
  if [[ $READY =~ ^ok\ ([0-9]+)$ ]]; then
    CPID=${BASH_REMATCH[1]}
    containers+=("$CPID")
  fi
}

# wait_file FILE: up to 5 s for FILE to appear.
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }
# wait_gone PID: up to 5 s for PID to exit (and be reaped or become a zombie).
wait_gone() {
  for _ in $(seq 100); do
    [ -d "/proc/$1" ] || return 0
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ] && return 0
    sleep 0.05
  done
  return 1
}
# messages FILE: the helper's log messages, without timestamps.
messages() { sed -n 's/^[0-9]\{4\}\/[0-9][0-9]\/[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9] init: //p' "$1"; }

expected_lines="making all mounts private
preparing image
mounting /proc
mounting /dev
mounting /dev/shm
mounting /dev/mqueue
mounting /dev/pts
mounting /sys
making device file /dev/null
making device file /dev/zero
making device file /dev/full
making device file /dev/tty
making device file /dev/random
making device file /dev/urandom
creating the /dev links
executing init /bin/sh"

# --------------------------------------------------- 1: basic container
echo "# basic container (plain directory root, net ns, hostname)"
host_hostname=$(hostname)
start basic --root "$work/bbroot" --ns mnt,pid,uts,ipc,net --hostname c1 \
  --env FOO=bar --env TERM=dumb --workdir /etc -- \
  /bin/sh -c 'echo hi; hostname; ip link; echo "env-$FOO-$TERM-$HOME-$PATH"; pwd; ls -l /dev; echo ready >/dev/null; sleep 30; true'
check "ready line is 'ok PID'" test -n "$CPID"
# The pidfile follows the ready line.
wait_file "$D/pid"
check_eq "pidfile holds the pid" "$CPID" "$(cat "$D/pid" 2>/dev/null)"
wait_file "$D/log"; for _ in $(seq 100); do grep -q '^/etc$' "$D/log" && break; sleep 0.05; done
check_eq "init log lines in order" "$expected_lines" "$(messages "$D/log")"
bad_lines=$(grep ' init: ' "$D/log" | grep -Evc '^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} init: .')
check_eq "log line format" 0 "$bad_lines"
check_grep "command output in the log" '^hi$' "$D/log"
check_grep "hostname set in the container" '^c1$' "$D/log"
check_eq "host hostname unchanged" "$host_hostname" "$(hostname)"
check_grep "lo is up" '^1: lo: <LOOPBACK,UP' "$D/log"
check_grep "environment (--env, defaults)" '^env-bar-dumb-/-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin$' "$D/log"
check_grep "workdir" '^/etc$' "$D/log"
check_grep "/dev/null is a char device 1,3" '^crw-rw-rw- .* 1, +3 .*null$' "$D/log"
check_grep "/dev/ptmx link" 'ptmx -> pts/ptmx$' "$D/log"
if [ -n "$CPID" ]; then
  check_eq "container is PID 1 in its pid ns" 1 "$(awk '/^NSpid:/ {print $NF}' "/proc/$CPID/status")"
  check "nsenter ps shows the command as PID 1" bash -c "nsenter -t $CPID -a ps | grep -Eq '^ +1 +root +/bin/sh -c echo hi'"
  check_eq "supervisor is the container's parent" "$SPID" "$(awk '{print $4}' "/proc/$CPID/stat")"
  check_eq "supervisor comm" imageapi-shim "$(cat "/proc/$SPID/comm")"
  check_eq "supervisor is a session leader" "$SPID" "$(awk '{print $6}' "/proc/$SPID/stat")"
  for ns in mnt pid uts ipc net; do
    check "$ns namespace is new" test "$(readlink "/proc/$CPID/ns/$ns")" != "$(readlink "/proc/$SPID/ns/$ns")"
  done
  check "cgroup namespace not requested: shared" test "$(readlink "/proc/$CPID/ns/cgroup")" == "$(readlink /proc/self/ns/cgroup)"
  check_eq "container has only fds 0 1 2" "0 1 2" "$(ls "/proc/$CPID/fd" | sort -n | xargs)"
  check "root is the image (pivot_root)" bash -c "nsenter -t $CPID -m cat /proc/1/mountinfo | awk '\$5 == \"/\"' | grep -q bbroot"
  check "no status while running" test ! -e "$D/status"
  kill -9 "$CPID"
  wait_file "$D/status"
  check_grep "status exit_code=137" '^exit_code=137$' "$D/status"
  check_grep "status signal=9" '^signal=9$' "$D/status"
  check_grep "status finished_at" '^finished_at=[0-9]{10,}$' "$D/status"
  check "no start_error in status" bash -c "! grep -q start_error '$D/status'"
  wait "$SPID"; check_eq "supervisor exit status 0" 0 "$?"
  check_eq "no temporary files left" "log out pid ready ready.fifo status" "$(ls "$D" | sort | xargs)"
fi
check_eq "one ready line" 1 "$(wc -l <"$D/ready")"

# --------------------------------------------------- 2: exec failure
echo "# command that does not exist"
start noexec --root "$work/bbroot" -- /bin/nonexistent arg
check_eq "ready error line" "error executing /bin/nonexistent: No such file or directory" "$READY"
wait "$SPID"; rc=$?
check_eq "supervisor exit status 1" 1 "$rc"
check_grep "log line for the exec failure" '^[0-9/]{10} [0-9:]{8} init: executing /bin/nonexistent: No such file or directory$' "$D/log"
check_eq "exec failure is logged once" 1 "$(grep -c 'init: executing /bin/nonexistent:' "$D/log")"
check_grep "status exit_code=127" '^exit_code=127$' "$D/status"
check_grep "status start_error" '^start_error=executing /bin/nonexistent: No such file or directory$' "$D/status"
check "no pidfile" test ! -e "$D/pid"

# --------------------------------------------------- 3: usage errors
echo "# command line errors"
for args in "--ns pid,uts" "--ns mnt,user" "--ns mnt,bogus" "--ns mnt --hostname x" "--cgroup"; do
  mkdir -p "$work/usage"
  # shellcheck disable=SC2086
  "$helper" --root "$work/bbroot" --log "$work/usage/log" $args -- /bin/true 2>"$work/usage/err" </dev/null
  rc=$?
  check_eq "'$args' exits 2" 2 "$rc"
done
check_grep "missing mnt is explained" 'init: --ns: the mnt namespace is required$' "$work/usage/log"
check_grep "user ns without maps is rejected" 'user namespace .* needs --uid-map and --gid-map' "$work/usage/log"
check_grep "usage error on stderr too" 'needs a value' "$work/usage/err"
"$helper" --log "$work/usage/log" -- /bin/true 2>/dev/null; check_eq "missing --root exits 2" 2 "$?"
"$helper" --root "$work/bbroot" --log "$work/usage/log" --ready-fd 3 --ns mnt,user -- /bin/true 3>"$work/usage/ready" 2>/dev/null
check_eq "usage error on the ready fd" "error the user namespace (--ns ...,user) needs --uid-map and --gid-map, and they need it" "$(cat "$work/usage/ready")"

# --------------------------------------------------- 4: systemd, cgroups, time ns, overlay root
echo "# --systemd on an overlay root, cgroups v1+v2, time namespace"
start systemd --root "$work/ov/root" --ns mnt,pid,uts,ipc,time --systemd \
  --cgroup "$v2/c" --cgroup "$v1/c" -- /bin/sh -c 'cat /proc/self/cgroup; ls /sys/fs/cgroup; sleep 30; true'
check "ready ok" test -n "$CPID"
systemd_lines=$(printf '%s\n' "$expected_lines" | awk '{print} /^mounting \/sys$/ {
  print "mounting /run"; print "mounting /tmp"; print "mounting /sys/fs/cgroup"; print "mounting /var/lib/journal"}')
check_eq "systemd log lines" "$systemd_lines" "$(messages "$D/log")"
if [ -n "$CPID" ]; then
  mi=/proc/$CPID/mountinfo
  check "/run is a tmpfs" awk '$5 == "/run" && $9 == "tmpfs" {f=1} END {exit !f}' "$mi"
  check "/tmp is a tmpfs" awk '$5 == "/tmp" && $9 == "tmpfs" {f=1} END {exit !f}' "$mi"
  check "/var/lib/journal is a tmpfs" awk '$5 == "/var/lib/journal" && $9 == "tmpfs" {f=1} END {exit !f}' "$mi"
  check "/sys/fs/cgroup is a writable cgroup2" awk '$5 == "/sys/fs/cgroup" && $9 == "cgroup2" && $6 ~ /^rw/ {f=1} END {exit !f}' "$mi"
  check "/sys is read-only" awk '$5 == "/sys" && $6 ~ /^ro/ {f=1} END {exit !f}' "$mi"
  check "/dev/pts is a new devpts instance" awk '$5 == "/dev/pts" && $9 == "devpts" && $NF ~ /ptmxmode=666/ {f=1} END {exit !f}' "$mi"
  check "/var/lib/journal created in the overlay upper dir" test -d "$work/ov/upper/var/lib/journal"
  check "container=imageapi in the environment" bash -c "tr '\\0' '\\n' </proc/$CPID/environ | grep -qx container=imageapi"
  check "v2 cgroup holds the container" grep -qx "$CPID" "$v2/c/cgroup.procs"
  check "v1 pids cgroup holds the container" grep -qx "$CPID" "$v1/c/cgroup.procs"
  check "supervisor is outside the cgroups" bash -c "! grep -q '$tag' /proc/$SPID/cgroup && ! grep -qx $SPID $v2/c/cgroup.procs $v1/c/cgroup.procs"
  check "cgroup namespace is new" test "$(readlink "/proc/$CPID/ns/cgroup")" != "$(readlink /proc/self/ns/cgroup)"
  check_grep "container sees its cgroup as /" '^0::/$' "$D/log"
  check_grep "cgroup2 root is the container's cgroup" '^cgroup.kill$' "$D/log"
  check "time namespace is new" test "$(readlink "/proc/$CPID/ns/time")" != "$(readlink /proc/self/ns/time)"
  check "supervisor stays in the host time ns" test "$(readlink "/proc/$SPID/ns/time")" == "$(readlink /proc/self/ns/time)"
  echo 1 >"$v2/c/cgroup.kill"
  wait_file "$D/status"
  check_grep "cgroup.kill: exit_code=137" '^exit_code=137$' "$D/status"
  wait "$SPID"; check_eq "supervisor survives cgroup.kill and exits 0" 0 "$?"
fi

# --------------------------------------------------- 5: read-only root, missing mountpoint
echo "# --systemd on a read-only squashfs root without /var/lib/journal"
start rofs --root "$work/sq" --systemd -- /bin/true
check_eq "ready error names the step" "error mounting /var/lib/journal: creating directory /var/lib/journal: Read-only file system" "$READY"
wait "$SPID"
check_grep "start_error in status" '^start_error=mounting /var/lib/journal: ' "$D/status"
check_grep "setup failure exit_code=125" '^exit_code=125$' "$D/status"
check_grep "error logged" 'init: mounting /var/lib/journal: creating directory /var/lib/journal: Read-only file system$' "$D/log"

# --------------------------------------------------- 6: symlinked mountpoint
echo "# /proc in the image is a symlink pointing outside"
start symlink --root "$work/ov2/root" -- /bin/true
check_eq "symlinked mountpoint refused" "error mounting /proc: /proc is a symbolic link: Too many levels of symbolic links" "$READY"
wait "$SPID"
check "nothing mounted outside the image" bash -c "! grep -q '$work/outside' /proc/self/mountinfo && [ -z \"\$(ls -A '$work/outside')\" ]"

# --------------------------------------------------- 7: supervisor outlives its parent
echo "# the supervisor survives when its parent is killed"
D=$work/orphan; mkdir -p "$D"; mkfifo "$D/ready.fifo"
bash -c '"$1" --root "$2" --log "$3/log" --pidfile "$3/pid" --status "$3/status" --ready-fd 3 -- /bin/sleep 30 \
  3>"$3/ready.fifo" </dev/null >/dev/null 2>&1 & echo $! >"$3/spid"; wait' _ "$helper" "$work/bbroot" "$D" &
parent=$!
READY=$(timeout 5 cat "$D/ready.fifo")
SPID=$(cat "$D/spid"); supervisors+=("$SPID")
CPID=${READY#ok }; [[ $CPID =~ ^[0-9]+$ ]] && containers+=("$CPID") || CPID=""
check "ready ok" test -n "$CPID"
kill -9 "$parent"; wait "$parent" 2>/dev/null
kill -HUP "$SPID"; kill -TERM "$SPID"; kill -INT "$SPID"; kill -PIPE "$SPID"
sleep 0.2
check "supervisor alive after parent kill -9 and HUP/TERM/INT/PIPE" kill -0 "$SPID"
if [ -n "$CPID" ]; then
  check "container alive" kill -0 "$CPID"
  check_eq "container has only fds 0 1 2" "0 1 2" "$(ls "/proc/$CPID/fd" | sort -n | xargs)"
  check_eq "container signal dispositions reset" 0000000000000000 "$(awk '/^SigIgn:/ {print $2}' "/proc/$CPID/status")"
  kill -9 "$CPID"
  wait_file "$D/status"
  check_grep "status written after the parent died" '^signal=9$' "$D/status"
  check "supervisor exits afterwards" wait_gone "$SPID"
fi

# --------------------------------------------------- 8: subreaper without a pid ns
echo "# orphans of a container without a pid namespace are reparented to the supervisor"
start subreaper --root "$work/bbroot" --ns mnt,uts,ipc --cgroup "$v2/s" -- sh -c '(sleep 31 &); sleep 30; true'
check "ready ok" test -n "$CPID"
if [ -n "$CPID" ]; then
  orphan=""
  for _ in $(seq 100); do
    for p in $(pgrep -P "$SPID"); do [ "$p" != "$CPID" ] && orphan=$p; done
    [ -n "$orphan" ] && break
    sleep 0.05
  done
  [ -n "$orphan" ] && containers+=("$orphan")
  check "orphan reparented to the supervisor" test -n "$orphan"
  check_grep "command found through the container's PATH" 'init: executing init sh$' "$D/log"
  check_eq "container sees the host pid ns" "$CPID" "$(awk '/^NSpid:/ {print $NF}' "/proc/$CPID/status")"
  kill -9 "$CPID"
  wait_file "$D/status"
  check_grep "status written although an orphan is still running" '^exit_code=137$' "$D/status"
  wait "$SPID"; check_eq "supervisor exit status 0" 0 "$?"
  echo 1 >"$v2/s/cgroup.kill"
fi

# --------------------------------------------------- 9: cgroup join failure
echo "# a --cgroup directory that does not exist"
start nocgroup --root "$work/bbroot" --cgroup "$work/no-such-cgroup" -- /bin/true
check_eq "ready error names the cgroup" "error joining cgroup $work/no-such-cgroup: No such file or directory" "$READY"
wait "$SPID"
check_grep "status exit_code=125" '^exit_code=125$' "$D/status"
check_eq "no init step ran" "joining cgroup $work/no-such-cgroup: No such file or directory" "$(messages "$D/log")"

# --------------------------------------------------- 10: killed during setup
echo "# container process killed before its exec (frozen cgroup, then cgroup.kill)"
echo 1 >"$v2/f/cgroup.freeze"
D=$work/killed; mkdir -p "$D"
"$helper" --root "$work/bbroot" --log "$D/log" --status "$D/status" --ready-fd 3 --cgroup "$v2/f" -- /bin/true \
  3>"$D/ready" </dev/null >/dev/null 2>&1 &
SPID=$!; supervisors+=("$SPID")
for _ in $(seq 100); do grep -q . "$v2/f/cgroup.procs" && break; sleep 0.02; done
echo 1 >"$v2/f/cgroup.kill"
wait "$SPID"
check_eq "ready error" "error the container process died before executing /bin/true" "$(cat "$D/ready")"
check_grep "status signal=9" '^signal=9$' "$D/status"
check_grep "status start_error" '^start_error=the container process died before executing /bin/true$' "$D/status"

# --------------------------------------------------- 11: how the cgroups are joined
echo "# created in the cgroup2 group (clone3 CLONE_INTO_CGROUP), v1 joined by the container; the clone + cgroup.procs fallback"
# cgroups_seen NAME V2-GROUP V1-GROUP: the container (no cgroup ns) printed
# its /proc/self/cgroup into the log of test NAME.
cgroups_seen() {
  check_grep "$1: /proc/self/cgroup shows the v2 group" "^0::/$tag/$2\$" "$work/$1/log"
  check_grep "$1: /proc/self/cgroup shows the v1 pids group" "^[0-9]+:pids:/$tag/$3\$" "$work/$1/log"
}
start born --root "$work/bbroot" --cgroup "$v2/b" --cgroup "$v1/b" -- /bin/sh -c 'cat /proc/self/cgroup'
check "ready ok" test -n "$CPID"
wait "$SPID"; check_eq "supervisor exit status 0" 0 "$?"
cgroups_seen born b b
# The old path, as on kernels without clone3 CLONE_INTO_CGROUP (< 5.7).
start_with "$test_helper" noclone3 --root "$work/bbroot" --cgroup "$v2/o" --cgroup "$v1/o" -- /bin/sh -c 'cat /proc/self/cgroup'
check "fallback: ready ok" test -n "$CPID"
wait "$SPID"; check_eq "fallback: supervisor exit status 0" 0 "$?"
cgroups_seen noclone3 o o
if command -v strace >/dev/null; then
  # trace_start NAME HELPER: HELPER under strace -f, v2 group b, v1 group b.
  trace_start() {
    mkdir -p "$work/$1"
    strace -f -qq -o "$work/$1/strace" -e trace=clone,clone3,openat,write "$2" --root "$work/bbroot" \
      --log "$work/$1/log" --cgroup "$v2/b" --cgroup "$v1/b" -- /bin/true </dev/null >/dev/null 2>&1
  }
  trace_start trace "$prod_helper"
  check_grep "the container process is created by clone3 CLONE_INTO_CGROUP" 'clone3\(\{flags=[^}]*CLONE_INTO_CGROUP' "$work/trace/strace"
  check "no cgroup.procs is written" bash -c "! grep -q 'cgroup.procs' '$work/trace/strace'"
  check_grep "the container joins its v1 group itself (0 to tasks)" "openat\(AT_FDCWD, \"$v1/b/tasks\", O_WRONLY" "$work/trace/strace"
  trace_start trace-noclone3 "$test_helper"
  check "fallback: no clone3" bash -c "! grep -q 'clone3(' '$work/trace-noclone3/strace'"
  check_grep "fallback: the supervisor writes the v2 cgroup.procs" "openat\(AT_FDCWD, \"$v2/b/cgroup.procs\", O_WRONLY" "$work/trace-noclone3/strace"
else
  echo "skip strace checks of clone3 (no strace)"
fi
# clone3 refused (a group with controllers enabled for its children cannot
# hold processes): the fallback path reports the error.
ctrl=$(awk '{print $1}' "${v2%/*}/cgroup.subtree_control")
if [ -n "$ctrl" ] && echo "+$ctrl" >"$v2/cgroup.subtree_control" && mkdir "$v2/e/x" && cgroups+=("$v2/e/x") &&
  echo "+$ctrl" >"$v2/e/cgroup.subtree_control"; then
  start busy --root "$work/bbroot" --cgroup "$v2/e" -- /bin/true
  check_eq "clone3 refused: the cgroup.procs error is reported" "error joining cgroup $v2/e: Device or resource busy" "$READY"
  wait "$SPID"; check_eq "clone3 refused: supervisor exit status 1" 1 "$?"
  check_eq "clone3 refused: nothing in the group" "" "$(cat "$v2/e/cgroup.procs")"
else
  echo "skip clone3 refused (no cgroup2 controller to enable)"
fi

# --------------------------------------------------- 12: fallbacks (run inside a user namespace)
echo "# fallbacks: mknod refused -> bind host nodes, sysfs refused -> read-only host /sys, devpts without gid=5"
D=$work/userns; mkdir -p "$D"
unshare --user --map-root-user "$helper" --root "$work/bbroot" --log "$D/log" --status "$D/status" -- \
  /bin/sh -c 'cat /proc/self/mountinfo; ls -l /dev/null; touch /sys/x 2>&1; touch /sys/fs/cgroup/pids/x 2>&1; echo done' \
  </dev/null >/dev/null 2>&1
check_eq "userns helper exit status" 0 "$?"
check_grep "container ran" '^done$' "$D/log"
check_grep "/dev/null works (host node bound)" '^crw-rw-rw- .* 1, +3 .*/dev/null$' "$D/log"
check "host /sys bound read-only" awk '$5 == "/sys" && $6 ~ /^ro/ {f=1} END {exit !f}' "$D/log"
check "submounts of /sys read-only too" awk '$5 == "/sys/fs/cgroup/pids" && $6 ~ /^ro/ {f=1} END {exit !f}' "$D/log"
check_grep "writing below /sys/fs/cgroup refused" 'touch: /sys/fs/cgroup/pids/x: Read-only file system' "$D/log"
check "devpts mounted" awk '$5 == "/dev/pts" && $9 == "devpts" {f=1} END {exit !f}' "$D/log"

# --------------------------------------------------- 13: exit status, durable files
echo "# started with SIGCHLD ignored; the status and pid files' directory is fsync'd"
# ignoring_sigchld CMD...: runs CMD with SIGCHLD ignored (inherited over exec).
ignoring_sigchld() { perl -e '$SIG{CHLD} = "IGNORE"; exec @ARGV or die "exec: $!\n"' -- "$@"; }
D=$work/sigign; mkdir -p "$D"
ignoring_sigchld "$prod_helper" --root "$work/bbroot" --log "$D/log" --status "$D/status" -- /bin/sh -c 'exit 3' \
  </dev/null >/dev/null 2>&1
check_eq "SIGCHLD ignored by the parent: supervisor exit status 0" 0 "$?"
check_grep "SIGCHLD ignored by the parent: the exit code is still known" '^exit_code=3$' "$D/status"
# The test build keeps the inherited SIG_IGN: the kernel reaps the container
# process, its exit status is lost, and no status file may claim one.
D=$work/sigign-lost; mkdir -p "$D"
ignoring_sigchld "$test_helper" --root "$work/bbroot" --log "$D/log" --status "$D/status" -- /bin/sh -c 'exit 3' \
  </dev/null >/dev/null 2>&1
check_eq "exit status lost (ECHILD): supervisor exit status 1" 1 "$?"
check "exit status lost (ECHILD): no status file" test ! -e "$D/status"
check_grep "exit status lost (ECHILD): logged" 'init: waiting for the container process [0-9]+: No child processes$' "$D/log"
if command -v strace >/dev/null; then
  D=$work/fsync; mkdir -p "$D"
  strace -f -qq -o "$D/strace" -e trace=openat,fsync,rename "$prod_helper" --root "$work/bbroot" --log "$D/log" \
    --pidfile "$D/pid" --status "$D/status" -- /bin/true </dev/null >/dev/null 2>&1
  # dir_synced FILE: the rename onto FILE is followed by an fsync of its directory.
  dir_synced() {
    awk -v f="\"$1\")" -v d="openat(AT_FDCWD, \"${1%/*}\", O_RDONLY" '
      index($0, "rename(") && index($0, f) { r = 1; next }
      r && index($0, d) && /O_DIRECTORY/ { split($0, a, "= "); fd = a[2] + 0; next }
      r && fd != "" && index($0, "fsync(" fd ")") { ok = 1; exit }
      END { exit !ok }' "$D/strace"
  }
  check "status file: directory fsync'd after the rename" dir_synced "$D/status"
  check "pidfile: directory fsync'd after the rename" dir_synced "$D/pid"
else
  echo "skip strace checks of the directory fsync (no strace)"
fi

# --------------------------------------------------- confinement, user namespace
echo "# --caps, --no-new-privs, --seccomp, --mask-paths, --user, --ns user"
D=$work/confined; mkdir -p "$D"
"$helper" --root "$work/bbroot" --log "$D/log" --status "$D/status" --caps chown,kill --no-new-privs \
  --seccomp default --mask-paths -- /bin/sh -c 'grep -E "^(CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status;
    echo "keys=$(wc -c < /proc/keys)"; unshare -m true 2>/dev/null; echo "unshare=$?"' </dev/null >/dev/null 2>&1
check_eq "confined: exit status 0" 0 "$?"
for want in 'CapEff:\s+0000000000000021$' 'CapBnd:\s+0000000000000021$' 'CapAmb:\s+0000000000000000$' 'NoNewPrivs:\s+1$' \
  'Seccomp:\s+2$' '^keys=0$' '^unshare=1$' 'init: masking /proc and /sys paths$'; do
  check_grep "confined: $want" "$want" "$D/log"
done
D=$work/sdprofile; mkdir -p "$D"
"$helper" --root "$work/bbroot" --log "$D/log" --seccomp systemd -- /bin/sh -c 'unshare -m true; echo "unshare=$?"' \
  </dev/null >/dev/null 2>&1
check_grep "--seccomp systemd allows unshare" '^unshare=0$' "$D/log"
D=$work/asuser; mkdir -p "$D"
"$helper" --root "$work/bbroot" --log "$D/log" --user 1000:1001 --caps chown -- /bin/sh -c 'echo "ids=$(id -u):$(id -g):$(id -G)";
    grep CapEff /proc/self/status' </dev/null >/dev/null 2>&1
check_grep "--user: uid, gid and only that group" '^ids=1000:1001:1001$' "$D/log"
check_grep "--user: no capabilities after the exec" 'CapEff:\s+0000000000000000$' "$D/log"
D=$work/userns; mkdir -p "$D"
"$helper" --root "$work/bbroot" --log "$D/log" --status "$D/status" --ns mnt,pid,ipc,user --uid-map 0:400000:65536 \
  --gid-map 0:400000:65536 -- /bin/sh -c 'id; cat /proc/self/uid_map; echo x > /root/userns-made' </dev/null >/dev/null 2>&1
check_eq "user ns: exit status 0" 0 "$?"
check_grep "user ns: id-mapped root logged" 'init: preparing image \(id-mapped\)$' "$D/log"
check_grep "user ns: root inside" '^uid=0\(root\) gid=0\(root\)' "$D/log"
check_grep "user ns: the map" '^ +0 +400000 +65536$' "$D/log"
check_eq "user ns: a file of its root is stored as uid 0 through the id-mapped mount" 0 "$(stat -c %u "$work/bbroot/root/userns-made" 2>&1)"
D=$work/userns-ovl; mkdir -p "$D"
"$helper" --root "$work/ov/root" --log "$D/log" --status "$D/status" --ns mnt,pid,ipc,user --uid-map 0:400000:65536 \
  --gid-map 0:400000:65536 -- /bin/true </dev/null >/dev/null 2>&1
check_eq "user ns on overlayfs: supervisor exit status 1" 1 "$?"
check_grep "user ns on overlayfs: the kernel cannot id-map it" '^start_error=id-mapping the root filesystem: this kernel cannot id-map' "$D/status"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
