#!/usr/bin/env bash
# Every benchmark in bench/: set-up (Debian packages, npm, build; crun for the comparison), then
# each bench/*.ts (compiled to dist/bench/NAME.js; shared code in bench/lib/), then a check that
# nothing was left behind (mounts, loop devices, agents, helpers, crun containers, work
# directories; each benchmark also checks its cgroups). Needs root.
#   bench/run.sh [NAME …]        e.g. bench/run.sh container-start
# Environment: BENCH_N, BENCH_WARMUP, BENCH_OBJECTS, … (see each benchmark's header and
# bench/README.md). The last line of each benchmark is `NAME: ours X, ref Y, ratio R (goal G)`;
# they are repeated at the end. Timings never fail the run; errors and leftovers do.
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
# crun: the reference runtime; wrk: the load generator (a second process, loopback only).
for p in crun wrk; do
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
results=()
started=$SECONDS
# ^C reaches the benchmark too, which cleans up and exits; then stop here (and still check for leftovers).
interrupted=
trap 'interrupted=1' INT TERM
for name in "${names[@]}"; do
  [ -z "$interrupted" ] || { echo "bench: interrupted"; status=1; break; }
  js=dist/bench/$name.js
  [ -f "$js" ] || { echo "bench: $js missing (is bench/$name.ts a benchmark?)"; status=1; continue; }
  echo "== $name"
  t0=$SECONDS
  out=$(mktemp)
  node "$js" | tee -i "$out" || status=1
  last=$(tail -n 1 "$out")
  rm -f "$out"
  case $last in "$name: ours "*) results+=("$last") ;; *) results+=("$name: no result") ;; esac
  echo "($name: $((SECONDS - t0)) s)"
done
echo "== results ($((SECONDS - started)) s)"
printf '%s\n' "${results[@]}"

# Nothing may be left behind: the benchmarks' mounts, loop devices, agents, helpers and cgroups
# (their work directories are $tmp/imageapi-bench-*).
left=0
if findmnt -rn -o TARGET | grep -E "^$tmp/imageapi-bench-"; then echo "bench: mounts left (above)"; left=1; fi
if losetup -ln -O NAME,BACK-FILE | grep -E "$tmp/imageapi-bench-"; then echo "bench: loop devices left (above)"; left=1; fi
if ps -eo pid=,args= | grep -E "$tmp/imageapi-bench-" | grep -v grep; then echo "bench: processes left (above)"; left=1; fi
if ps -eo pid=,args= | grep -E "nginx.* -p $tmp/imageapi-imgsrv-" | grep -v grep; then echo "bench: image servers (nginx) left (above)"; left=1; fi
if crun list -q 2>/dev/null | grep '^imageapi-bench-'; then echo "bench: crun containers left (above)"; left=1; fi
if [ -n "$(ls -d "$tmp"/imageapi-bench-* 2>/dev/null)" ]; then echo "bench: work directories left: $(ls -d "$tmp"/imageapi-bench-*)"; left=1; fi
[ $left -eq 0 ] && echo "bench: nothing left behind"
[ $left -eq 0 ] || status=1
exit $status
