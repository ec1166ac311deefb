#!/usr/bin/env bash
# Small-upload throughput per storage.sync mode (docs/performance.md,
# "Commit stage"): put_driver (tests/tools/put_driver.c, `make
# build/rel/put_driver`) with 16 connections PUTting SIZE bytes, a new
# XEP-0363-shaped URL (its own directory) each time, for DUR seconds or
# COUNT uploads, against one daemon per mode, the modes in rotated order
# each run (CONNS, default 16, connections). Prints one line per run and
# mode.
#   BENCH_TMPDIR=/mnt/j bash tests/bench/sync_modes.sh
# Settings (environment): BENCH_TMPDIR (storage filesystem, default /tmp),
# MODES ("always batch off"; "-" writes no storage.sync, for builds
# older than it), RUNS (3), DUR (5 s), COUNT (20000), SIZE (4096),
# WORKERS (2),
# EXTRA (more storage keys, e.g. 'sync_window_ms = 0;'),
# HFS_BIN (default build/rel/hmac-file-server).
set -eu
cd "$(dirname "$0")/../.."
here=tests/bench
bin=${HFS_BIN:-$PWD/build/rel/hmac-file-server}
MODES=${MODES:-"always batch off"}
RUNS=${RUNS:-3} DUR=${DUR:-5} SIZE=${SIZE:-4096} WORKERS=${WORKERS:-2}
EXTRA=${EXTRA:-} COUNT=${COUNT:-20000} CONNS=${CONNS:-16}
driver=${PUT_DRIVER:-$PWD/build/rel/put_driver}
SECRET=bench-secret
tmp=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/hfs-syncbench-XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
journal=$(dumpe2fs -h "$(df --output=source "$tmp" | tail -1)" 2>/dev/null |
          grep -c has_journal || true)
echo "# storage $tmp ($(df --output=fstype "$tmp" | tail -1)," \
     "journal: $([ "$journal" -gt 0 ] && echo yes || echo no/unknown))," \
     "PUT $SIZE B, $CONNS connections, ${DUR}s, $WORKERS workers, $(date -u +%FT%TZ)," \
     "$("$bin" -V | head -1), script at $(git rev-parse --short HEAD)"

start() {   # $1 mode
    mkdir -p "$tmp/storage" "$tmp/staging"
    cat >"$tmp/hfs.conf" <<EOF
server: { listen = [ "127.0.0.1:$port" ]; workers = $WORKERS; };
storage: { dir = "$tmp/storage"; staging = "$tmp/staging"; min_free = "1M";
           $([ "$1" = - ] || echo "sync = \"$1\";") $EXTRA };
security: { secrets = [ "$SECRET" ]; };
network: { networkchangedetection = false; };
uploads: { shm_name = "/hfs-syncbench-$$"; };
logging: { level = "warn"; };
EOF
    "$bin" -f -c "$tmp/hfs.conf" 2>>"$tmp/hfs.log" &
    pid=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/health" && return 0
        sleep 0.05
    done
    cat "$tmp/hfs.log" >&2
    exit 1
}

stop() {
    kill "$pid" && wait "$pid" || true
    pid=
    rm -rf "$tmp/storage" "$tmp/staging"
}

head -c "$SIZE" /dev/urandom >"$tmp/body"
for run in $(seq "$RUNS"); do
    set -- $MODES
    for _ in $(seq $(( (run - 1) % $# ))); do set -- "${@:2}" "$1"; done
    for mode in "$@"; do
        start "$mode"
        sync -f "$tmp"
        line=$("$driver" --port "$port" --secret "$SECRET" --file "$tmp/body" \
               --prefix "r$run" --conns "$CONNS" --count "$COUNT" --seconds "$DUR" |
               grep '^DRIVERRESULT') || true
        m=$(curl -s "http://127.0.0.1:$port/metrics")
        syncs=$(awk '/^hfs_syncs_total/ {s += $2} END {print s + 0}' <<<"$m")
        groups=$(awk '/^hfs_sync_batches_total/ {print $2}' <<<"$m")
        python3 - "$run" "$mode" "$line" "$syncs" "$groups" <<'PY'
import sys
run, mode, line, syncs, groups = sys.argv[1:]
kv = dict(x.split("=", 1) for x in line.split()[1:])
ok = int(kv.get("ok", 0)) or 1
print("run %s %-6s %7.0f PUT/s  p50 %6.2f ms  p99 %7.2f ms  201s %6s  "
      "failed %s  syncs/upload %.2f  uploads/group %s" % (
          run, mode, ok / float(kv["seconds"]), int(kv["p50_us"]) / 1e3,
          int(kv["p99_us"]) / 1e3, kv.get("ok"), kv.get("failed"),
          float(syncs or 0) / ok,
          "%.1f" % (ok / float(groups)) if float(groups or 0) else "-"))
PY
        stop
    done
done
