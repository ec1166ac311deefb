#!/usr/bin/env bash
# run.sh: `make fuzz`. Builds every target with clang's libFuzzer, ASan and
# UBSan into build/fuzz/, then fuzzes each for FUZZ_SECONDS (default 60),
# one after the other, in a single process (one core).
#
#   bash tests/fuzz/run.sh [name...]      or FUZZ_ONLY="name ..."
#   FUZZ_SECONDS=0                        build, run the seeds once, stop
#   FUZZ_ARGS="-max_len=100"              extra libFuzzer options
#
# Seeds are read from tests/fuzz/corpus/<name>/ and never written: inputs
# libFuzzer finds go to build/fuzz/corpus/<name>/, crashes to
# build/fuzz/artifacts/<name>/. How to keep a crash as a regression input:
# docs/fuzzing.md.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/fuzz/targets.sh

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_CC=${FUZZ_CC:-clang}
fuzz_only=${FUZZ_ONLY:-$*}
out=build/fuzz
cflags="-std=gnu11 -g -O1 -Wall -Wextra -pthread -I. -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if ! command -v "$FUZZ_CC" >/dev/null; then
    echo "fuzz: $FUZZ_CC not found (clang with libclang-rt is needed)" >&2
    exit 1
fi
mkdir -p "$out"
clean=0 crashed=0 skipped=0
for name in $(fuzz_targets); do
    fuzz_selected "$name" || continue
    missing=$(fuzz_missing "$name" | tr '\n' ' ')
    if [ -n "$missing" ]; then
        echo "SKIP: fuzz/$name (not in the tree yet: ${missing% })"
        skipped=$((skipped + 1))
        continue
    fi
    echo "== fuzz/$name: build"
    # shellcheck disable=SC2046,SC2086
    if ! $FUZZ_CC $cflags -o "$out/$name" "$fuzz_dir/fuzz_$name.c" \
            $(fuzz_meta "$name" sources) $(fuzz_meta "$name" libs); then
        echo "FAIL: fuzz/$name (does not build)"
        crashed=$((crashed + 1))
        continue
    fi
    seeds=$fuzz_dir/corpus/$name
    new=$out/corpus/$name
    art=$out/artifacts/$name
    mkdir -p "$seeds" "$new" "$art"
    # shellcheck disable=SC2207   # options are words, split on purpose
    args=(-timeout=10 -artifact_prefix="$art/" $(fuzz_meta "$name" args))
    [ -e "$fuzz_dir/$name.dict" ] && args+=(-dict="$fuzz_dir/$name.dict")
    if [ "$FUZZ_SECONDS" -eq 0 ]; then
        args+=(-runs=0)
    else
        args+=(-max_total_time="$FUZZ_SECONDS" -print_final_stats=1)
    fi
    echo "== fuzz/$name: ${FUZZ_SECONDS}s"
    # shellcheck disable=SC2086
    if "$out/$name" "${args[@]}" ${FUZZ_ARGS:-} "$new" "$seeds"; then
        echo "PASS: fuzz/$name"
        clean=$((clean + 1))
    else
        echo "FAIL: fuzz/$name; reproduce with: $out/$name <file>"
        for f in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*; do
            [ -e "$f" ] && echo "    $f"
        done
        crashed=$((crashed + 1))
    fi
done
echo "fuzz: $clean clean, $crashed failed, $skipped skipped"
[ "$crashed" -eq 0 ]
