#!/usr/bin/env bash
# Every benchmark in bench/: set-up (Debian packages, npm, build; crun for the comparison), then
# each bench/*.ts that has a main (compiled to dist/bench/NAME.js), then a check that nothing was
# left behind (mounts, loop devices, agents, helpers, cgroups). Needs root.
#   bench/run.sh [NAME …]        e.g. bench/run.sh container-start
# Environment: BENCH_N, BENCH_WARMUP, … (see each benchmark's header).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
# tsc emits even when some file does not type-check: a broken file elsewhere (a test being edited)
# is reported and fails the run, but does not keep the benchmarks from running.
if ! bash scripts/setup.sh --tests; then
  echo "bench: the set-up or build failed (above); running the benchmarks on what was built" >&2
  status=1
  [ -x native/build/imageapi-init ] && [ -f dist/src/main.js ] || exit 1
fi
missing=()
for p in crun; do
  command -v "$p" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in bench/*.ts; do names+=("$(basename "$f" .ts)"); done
fi
tmp=${TMPDIR:-/tmp}
for name in "${names[@]}"; do
  js=dist/bench/$name.js
  [ -f "$js" ] || { echo "bench: $js missing (is bench/$name.ts a benchmark?)"; status=1; continue; }
  echo "== $name"
  node "$js" || status=1
done

# Nothing may be left behind: the benchmarks' mounts, loop devices, agents, helpers and cgroups
# (their work directories are $tmp/imageapi-bench-*).
left=0
if findmnt -rn -o TARGET | grep -E "^$tmp/imageapi-bench-"; then echo "bench: mounts left (above)"; left=1; fi
if losetup -ln -O NAME,BACK-FILE | grep -E "$tmp/imageapi-bench-"; then echo "bench: loop devices left (above)"; left=1; fi
if ps -eo pid=,args= | grep -E "$tmp/imageapi-bench-" | grep -v grep; then echo "bench: processes left (above)"; left=1; fi
if crun list -q 2>/dev/null | grep '^imageapi-bench-'; then echo "bench: crun containers left (above)"; left=1; fi
if [ -n "$(ls -d "$tmp"/imageapi-bench-* 2>/dev/null)" ]; then echo "bench: work directories left: $(ls -d "$tmp"/imageapi-bench-*)"; left=1; fi
[ $left -eq 0 ] && echo "bench: nothing left behind"
[ $left -eq 0 ] || status=1
exit $status
