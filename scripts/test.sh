#!/usr/bin/env bash
# The whole test suite: set-up (Debian packages, npm, build), then every test, then a check that
# nothing was left behind. Needs root (the tests attach, mount and run containers for real).
#   scripts/test.sh [node --test file or dir …]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
# The layer rule (imports point down: README, Layout). A violation fails the run.
lint_failed=0
npm run --silent lint || lint_failed=1
# The spec against Redocly's recommended rules (.redocly.lint.yaml). A problem fails the run.
spec_lint_failed=0
npm run --silent lint:spec || spec_lint_failed=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(dist/test/)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
# One file at a time: they share the kernel's loop devices (and one Ceph port), on two cores.
node --test --test-concurrency=1 --test-reporter=spec "${targets[@]}" 2>&1 | tee "$out" || status=1
pass=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$out" | tail -1)
fail=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$out" | tail -1)
skip=$(sed -n 's/^ℹ skipped \([0-9]*\)$/\1/p' "$out" | tail -1)
pass=${pass:-0} fail=${fail:-0} skip=${skip:-0}
[ "$pass" -gt 0 ] || { echo "test.sh: no test ran"; status=1; }
if [ $# -eq 0 ]; then
  bash test/native/init-helper.sh 2>&1 | tee "$out" || status=1
  npass=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$out" | tail -1)
  nfail=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$out" | tail -1)
  pass=$((pass + ${npass:-0})) fail=$((fail + ${nfail:-1}))
fi
bash scripts/check-leaks.sh || { status=1; fail=$((fail + 1)); }
[ "$lint_failed" -eq 0 ] || { echo "test.sh: the layer rule is broken (npm run lint, above)"; fail=$((fail + 1)); }
[ "$spec_lint_failed" -eq 0 ] || { echo "test.sh: swagger.yaml fails redocly lint (npm run lint:spec, above)"; fail=$((fail + 1)); }
[ "$fail" -eq 0 ] || status=1
echo "tests: $pass passed, $fail failed, $skip skipped"
exit $status
