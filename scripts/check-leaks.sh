#!/usr/bin/env bash
# After the suite: no test mount, loop device, agent, supervisor or cgroup may remain.
left=0
tmp=${TMPDIR:-/tmp}
if findmnt -rn -o TARGET | grep -E "^$tmp/imageapi-(test|fixtures)" ; then echo "check-leaks: mounts left (above)"; left=1; fi
if losetup -ln -O NAME,BACK-FILE | grep -E "$tmp/imageapi-(test|fixtures)"; then echo "check-leaks: loop devices left (above)"; left=1; fi
# (zombies are skipped: an exited supervisor whose agent died waits for PID 1 to reap it)
if ps -eo pid=,stat=,args= | awk '$2 !~ /^Z/' | grep -E "imageapi-(shim|init)|dist/src/main.js --scheme http --port 0" | grep -v grep; then echo "check-leaks: processes left (above)"; left=1; fi
if ps -eo pid=,args= | grep -E "rbd-fuse .*imageapi-test|ceph-(mon|osd) .*imageapi-rbd" | grep -v grep; then echo "check-leaks: Ceph processes left (above)"; left=1; fi
if ps -eo pid=,args= | grep -E "nginx.* -p $tmp/imageapi-imgsrv-" | grep -v grep; then echo "check-leaks: image servers (nginx) left (above)"; left=1; fi
if findmnt -rn -o TARGET,FSTYPE | grep -E "fuse.rbd-fuse|^$tmp/imageapi-rbd"; then echo "check-leaks: rbd-fuse mounts left (above)"; left=1; fi
if find /sys/fs/cgroup -maxdepth 3 -type d -name 'imageapi-*' 2>/dev/null | grep .; then echo "check-leaks: cgroups left (above)"; left=1; fi
if nft list tables 2>/dev/null | grep -E 'inet imageapi_'; then echo "check-leaks: network guard tables left (above)"; left=1; fi
[ $left -eq 0 ] && echo "check-leaks: nothing left behind"
exit $left
