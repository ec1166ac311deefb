#!/usr/bin/env bash
# Runs every test suite and prints the total as the last line:
#   N passed, N failed
# Each suite prints PASS/FAIL lines and its own "<suite>: N passed, N failed".
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/rel}
export HFS_BIN="$PWD/$BUILD/hmac-file-server"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

suites=("unit:$BUILD/unit-tests")
suites+=("client_c_unit:$BUILD/client-unit-tests")
suites+=("fuzz:bash tests/fuzz/regress.sh")
suites+=("includes:python3 tests/lint/check_includes.py")
# client/js's node --test units (back-off, range arithmetic, storage).
suites+=("client_js_unit:node client/js/test/run.mjs")
for f in tests/integration/test_*.py; do
  [ -e "$f" ] && suites+=("$(basename "$f" .py):python3 tests/integration/runner.py $f")
done
[ -n "${ONLY:-}" ] && mapfile -t suites < <(printf '%s\n' "${suites[@]}" | grep -E "^(${ONLY}):")

passed=0 failed=0
for s in "${suites[@]}"; do
  name=${s%%:*} cmd=${s#*:}
  echo "== $name"
  $cmd 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^[a-z_0-9-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  if [ -z "$line" ]; then
    echo "FAIL: $name (exited $rc without a summary)"
    failed=$((failed + 1))
    continue
  fi
  p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
  passed=$((passed + p)) failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL: $name (exited $rc)"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
