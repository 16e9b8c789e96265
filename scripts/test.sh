#!/usr/bin/env bash
# The whole test suite: set-up (Debian packages, npm, build), then every test, then a check that
# nothing was left behind. Needs root (the tests attach, mount and run containers for real).
#   scripts/test.sh [node --test file or dir …]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(dist/test/)
status=0
# One file at a time: they share the kernel's loop devices, and the machine has two cores.
node --test --test-concurrency=1 --test-reporter=spec "${targets[@]}" || status=$?
if [ -x test/native/init-helper.sh ] && [ $# -eq 0 ]; then
  bash test/native/init-helper.sh || status=1
fi
bash scripts/check-leaks.sh || status=1
exit $status
