#!/usr/bin/env bash
# tests/bench/run.sh: `make bench` -- the daemon and nginx side by side, on
# loopback, in the same run, each with its own storage directory on the same
# filesystem, with the same load tools, next to the machine's own limits.
#
# Servers: the daemon twice, storage.sync = "always" (its default) and
# "off" (BENCH_SYNC_MODES; a mode the binary refuses, found with its `-t`
# config check, is reported n/a), and nginx (WebDAV PUT, nginx.conf.in).
# Rows (BENCH_ONLY picks some, comma- or space-separated):
#   limits   loopback TCP, one stream (tcp_ceiling); sequential write of
#            BENCH_BIG_MB with fdatasync (dd); durable 4 KiB uploads/s with
#            16 threads doing the daemon's own sync sequence
#            (durable_ceiling)
#   get4k    GET of a 4 KiB file, wrk -t2 -c64 -dBENCH_DURATION
#   get1m    the same, 1 MiB
#   put4k    4 KiB PUTs, 16 connections, a fresh URL each (put_driver),
#            at most BENCH_PUT_COUNT uploads or BENCH_PUT_SECONDS
#   many     BENCH_MANY (64) concurrent PUTs of BENCH_MANY_MB (8) MiB
#   big      one PUT of BENCH_BIG_MB (1024) MiB with curl
#   chunked  the daemon only: BENCH_CHUNKED_MB (256) MiB as resumable
#            chunks of BENCH_CHUNK_MB (5) MiB (X-Upload-Session-ID), and the
#            same file as one plain PUT, back to back
#   idle     memory per idle keep-alive connection and at rest (fresh
#            servers; the daemon in its default mode and nginx)
#   cluster  64 concurrent 8 MiB PUTs: 3 nodes on GlusterFS behind HAProxy
#            vs 1 node (cluster.sh, its own servers and report,
#            build/bench/cluster.md; root only, says "skipped" otherwise)
# BENCH_JOURNAL=1 then repeats limits (but TCP), put4k, many, big and chunked
# with every server's storage on a loop-mounted journaled ext4 image (root
# only). BENCH_ACCESS_LOG=1 adds "hfslog", the default daemon with its
# access log written to a file, to get4k and put4k.
#
# Every measurement runs BENCH_RUNS times (default 3), servers alternating
# and taking turns at going first; the report gives medians and ranges.
# Every upload leaves a file, and deleting files on this machine's disk
# (mounted with discard) costs about a millisecond each: the PUT rows are
# bounded by count, and each server's storage is removed with one rm -rf at
# the end. Results: build/bench/results.md (+ raw.txt). Informational only:
# exits 0 whatever the numbers; 1 only if it could not measure at all.
#
# Knobs (environment): BENCH_RUNS=3 BENCH_DURATION=5 BENCH_IDLE_CONNS=2000
#   BENCH_BIG_MB=1024 BENCH_MANY=64 BENCH_MANY_MB=8 BENCH_CHUNKED_MB=256
#   BENCH_CHUNK_MB=5 BENCH_PUT_COUNT=2000 BENCH_PUT_SECONDS=10
#   BENCH_CEILING_COUNT=2000 BENCH_SYNC_MODES="always off"
#   BENCH_ONLY="limits get4k get1m put4k many big chunked idle cluster"
#   BENCH_JOURNAL=0 BENCH_JOURNAL_GB=8 BENCH_ACCESS_LOG=0
#   BENCH_TMPDIR=/tmp (storage of every server: one filesystem)
#   BENCH_OUT=build/bench (results.md, raw.txt)
#   HFS_BIN=path (default $BUILD/hmac-file-server; the tools are always
#   this tree's, from $BUILD)
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1     # no __pycache__ in the source tree
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build/rel}
BIN=${HFS_BIN:-$repo/$BUILD/hmac-file-server}
TOOLS=$repo/$BUILD           # put_driver, tcp_ceiling, durable_ceiling
RUNS=${BENCH_RUNS:-3}
DUR=${BENCH_DURATION:-5}
IDLE_CONNS=${BENCH_IDLE_CONNS:-2000}
BIG_MB=${BENCH_BIG_MB:-1024}
MANY=${BENCH_MANY:-64}
MANY_MB=${BENCH_MANY_MB:-8}
CHUNKED_MB=${BENCH_CHUNKED_MB:-256}
CHUNK_MB=${BENCH_CHUNK_MB:-5}
PUT_COUNT=${BENCH_PUT_COUNT:-2000}
PUT_SECONDS=${BENCH_PUT_SECONDS:-10}
CEIL_COUNT=${BENCH_CEILING_COUNT:-2000}
SYNC_MODES=${BENCH_SYNC_MODES:-"always off"}
JOURNAL=${BENCH_JOURNAL:-0}
JOURNAL_GB=${BENCH_JOURNAL_GB:-8}
ACCESS_LOG=${BENCH_ACCESS_LOG:-0}
ONLY=" $(echo "${BENCH_ONLY:-limits get4k get1m put4k many big chunked idle cluster}" |
        tr ',' ' ' | sed 's/\bput\b/put4k/g') "
SECRET="bench-secret-$$-$RANDOM"
OUT=${BENCH_OUT:-$repo/build/bench}

die() { echo "bench: $*" >&2; exit 1; }
log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
want() { case $ONLY in *" $1 "*) return 0;; esac; return 1; }

for t in wrk nginx curl python3 dd; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (make deps)"
done
[ -x "$BIN" ] || die "no daemon at $BIN (make)"
for t in put_driver tcp_ceiling durable_ceiling; do
    [ -x "$TOOLS/$t" ] || die "no $TOOLS/$t (make bench builds it)"
done
nginx -V 2>&1 | grep -q -- --with-http_dav_module \
    || die "this nginx has no dav module (PUT); see docs/performance.md"

# 2000 idle sockets on each side of loopback, plus the servers' own.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((IDLE_CONNS + 200)) ] \
    || die "ulimit -n $(ulimit -n) too low for $IDLE_CONNS connections"

mkdir -p "$OUT" || die "cannot create $OUT"
tmp=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/hfs-bench.XXXXXX") || die "mktemp"
mkdir -p "$tmp/nginx" "$tmp/seed" || die mkdir
RAW=$tmp/raw.txt
: >"$RAW"
ACCESS=$tmp/access.log      # hfslog's access log, emptied after each run
JIMG= JMNT=                 # the journaled image, while it exists

declare -A PID PORT ROOT STAGING MODE TREE
PHASE=                      # "" on the plain filesystem, "j." on the image
BASE=$tmp/data              # the phase's storage: BASE/<server>/{root,...}
starts=0
# Which servers exist: the daemon once per mode it accepts, and nginx.
DAEMONS=()

record() { echo "$*" >>"$RAW"; }
free_port() {
    python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

. "$here/servers.sh"
. "$here/rows.sh"

# A mode is measured if this binary's config check accepts it; "always"
# is then also the default of a binary that has no storage.sync at all.
probe_modes() {
    local m conf=$tmp/probe.conf
    mkdir -p "$tmp/probe/root" "$tmp/probe/staging"
    for m in $SYNC_MODES; do
        write_hfs_conf "$conf" 1 "$tmp/probe/root" "$tmp/probe/staging" off "$m"
        if "$BIN" -t -c "$conf" >/dev/null 2>&1; then
            DAEMONS+=("$m")
            MODE[$m]=$m
        elif [ "$m" = always ]; then
            DAEMONS+=(always)
            MODE[always]=
            record "sync always - status=default"
        else
            record "sync $m - status=unsupported"
            log "storage.sync = \"$m\": not accepted by this binary, n/a"
        fi
    done
    [ ${#DAEMONS[@]} -gt 0 ] || die "no sync mode to measure"
}

machine() {
    local cpu fs dev rev journal=unknown
    cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    fs=$(df -PT "$tmp" | awk 'NR==2{print $2}')
    dev=$(basename "$(df -P "$tmp" | awk 'NR==2{print $1}')")
    rev=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)
    # ext4 without a journal makes fsync far cheaper than on a server's
    # disk; the report says so next to the PUT figures.
    case $fs in ext3|ext4)
        journal=no
        ls /proc/fs/jbd2 2>/dev/null | grep -q "^$dev-" && journal=yes;;
    esac
    record "machine - - cpus=$(nproc) kernel=$(uname -r) cpu=${cpu// /_}"
    record "machine - - nginx=$(nginx -v 2>&1 | sed 's|.*/||')" \
           "wrk=$(wrk -v 2>&1 | awk 'NR==1{print $2}')"
    record "machine - - rev=$rev bin=${HFS_BIN:-$BUILD/hmac-file-server}" \
           "date=$(date -u +%Y-%m-%dT%H:%MZ)"
    record "machine - - fs=$fs journal=$journal duration=$DUR runs=$RUNS" \
           "discard=$(findmnt -no OPTIONS -T "$tmp" 2>/dev/null |
                      grep -qw discard && echo yes || echo no)" \
           "load_start=$(cut -d' ' -f1 /proc/loadavg)"
}

cleanup() {
    stop_all
    [ -n "$JMNT" ] && umount "$JMNT" 2>/dev/null
    rm -f /dev/shm/hfs-bench-$$-* 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The rows of one phase, each servers' storage made afresh under BASE.
run_phase() {
    local rows=$1 r
    for r in $rows; do
        want "$r" || continue
        local t=$(date +%s)
        "row_$r"
        log "$PHASE$r: $(( $(date +%s) - t )) s"
    done
}

t0=$(date +%s)
machine
probe_modes
SERVERS=("${DAEMONS[@]}" nginx)
[ "$ACCESS_LOG" = 1 ] && SERVERS+=(hfslog) && MODE[hfslog]=${MODE[always]-}
make_seeds
want limits && { row_limits; log "limits: done"; }
if want get4k || want get1m || want put4k || want many || want big \
   || want chunked; then
    start_all
    seed_get_files
    run_phase "get4k get1m put4k many big chunked"
    stop_all
fi
# Memory at rest needs fresh servers, which need no disk speed: the
# uploads' files go meanwhile, one rm -rf for all of them.
mv "$BASE" "$tmp/trash" 2>/dev/null
rm -rf "$tmp/trash" &
rmpid=$!
BASE=$tmp/idle
want idle && row_idle
t=$(date +%s); wait "$rmpid"
log "storage removed ($(( $(date +%s) - t )) s after the idle row)"
rm -rf "$BASE"
# The cluster row starts its own servers and Gluster volume (cluster.sh).
want cluster && { t=$(date +%s); BENCH_RUNS=$RUNS bash "$here/cluster.sh"
                  log "cluster: $(( $(date +%s) - t )) s"; }
if [ "$JOURNAL" = 1 ]; then
    record "machine - - plain_seconds=$(( $(date +%s) - t0 ))"
    log "without the journaled phase: $(( $(date +%s) - t0 )) s"
    journal_phase
fi
log "done in $(( $(date +%s) - t0 )) s"
record "machine - - load_end=$(cut -d' ' -f1 /proc/loadavg)" \
       "seconds=$(( $(date +%s) - t0 ))"
report_logs
cp "$RAW" "$OUT/raw.txt"
python3 "$here/report.py" "$RAW" "$OUT/results.md" || log "report failed"
exit 0
