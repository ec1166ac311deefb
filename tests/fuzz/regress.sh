#!/usr/bin/env bash
# regress.sh: the fuzz targets as regression tests, for `make check`.
# Builds each target without libFuzzer, with standalone_main.c (under ASan
# and UBSan unless FUZZ_REGRESS_SAN=0), and replays its committed corpus,
# tests/fuzz/corpus/<name>/: the seeds and every crash-* input kept from a
# fuzzing run. Prints PASS/FAIL per target and "fuzz: N passed, N failed".
#
#   bash tests/fuzz/regress.sh [name...]
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/fuzz/targets.sh

cc=${FUZZ_REGRESS_CC:-cc}
fuzz_only=${FUZZ_ONLY:-$*}
out=build/fuzz-regress
cflags="-std=gnu11 -O1 -g -Wall -Wextra -pthread -I. -fno-omit-frame-pointer"
if [ "${FUZZ_REGRESS_SAN:-1}" = 1 ]; then
    cflags="$cflags -fsanitize=address,undefined -fno-sanitize-recover=undefined"
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$out"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

passed=0 failed=0
for name in $(fuzz_targets); do
    fuzz_selected "$name" || continue
    missing=$(fuzz_missing "$name" | tr '\n' ' ')
    if [ -n "$missing" ]; then
        echo "SKIP: fuzz/$name (not in the tree yet: ${missing% })"
        continue
    fi
    # shellcheck disable=SC2046,SC2086
    if ! $cc $cflags -o "$out/$name" "$fuzz_dir/fuzz_$name.c" \
            "$fuzz_dir/standalone_main.c" $(fuzz_meta "$name" sources) \
            $(fuzz_meta "$name" libs) >"$log" 2>&1; then
        sed 's/^/    /' "$log" | head -20
        echo "FAIL: fuzz/$name (does not build)"
        failed=$((failed + 1))
        continue
    fi
    mkdir -p "$fuzz_dir/corpus/$name"
    if "$out/$name" "$fuzz_dir/corpus/$name" >"$log" 2>&1; then
        echo "PASS: fuzz/$name ($(tail -1 "$log"))"
        passed=$((passed + 1))
    else
        # Again, naming each input, so the report ends at the culprit.
        HFS_FUZZ_VERBOSE=1 "$out/$name" "$fuzz_dir/corpus/$name" \
            >"$log" 2>&1
        grep '^input: ' "$log" | tail -1 | sed 's/^/    /'
        grep -v '^input: ' "$log" | head -30 | sed 's/^/    /'
        echo "FAIL: fuzz/$name"
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
