# shellcheck shell=bash
# targets.sh: sourced by run.sh and regress.sh. A fuzz target is
# tests/fuzz/fuzz_<name>.c; what it links is written in its first comment
# (see fuzz.h), so adding a target is adding one file.

fuzz_dir=tests/fuzz

# Names of all targets, sorted: fuzz_http_request.c -> http_request.
fuzz_targets() {
    local f
    for f in "$fuzz_dir"/fuzz_*.c; do
        [ -e "$f" ] || continue
        f=${f##*/fuzz_}
        echo "${f%.c}"
    done
}

# fuzz_meta NAME KEY: the value of "KEY:" in the target's header comment.
fuzz_meta() {
    sed -n "s/^.*fuzz-$2:[[:space:]]*//p" "$fuzz_dir/fuzz_$1.c" | head -1 \
        | sed 's/[[:space:]]*\*\/.*$//; s/[[:space:]]*$//'
}

# fuzz_missing NAME: prints the sources that are not in the tree yet.
fuzz_missing() {
    local s
    for s in $(fuzz_meta "$1" sources); do
        [ -e "$s" ] || echo "$s"
    done
}

# fuzz_selected NAME: true if NAME was asked for (FUZZ_ONLY or arguments
# of the calling script, both lists of names; empty selects all).
fuzz_selected() {
    local want
    [ -z "$fuzz_only" ] && return 0
    for want in $fuzz_only; do
        [ "$want" = "$1" ] && return 0
    done
    return 1
}
