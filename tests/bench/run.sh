#!/usr/bin/env bash
# tests/bench/run.sh: `make bench` -- the daemon and nginx side by side, on
# loopback, in the same run, same storage directory, same load tools.
#
#   GET   4 KiB and 1 MiB files       wrk -t2 -c64
#   PUT   64 KiB, a new URL each time wrk -t2 -c16 (signed v1 URLs, see
#                                     sign_urls.py; the same paths unsigned
#                                     for nginx's WebDAV PUT)
#   idle  memory per idle keep-alive connection (idle_conns.py, fresh
#         servers, 2000 connections)
#   big   one 1 GiB PUT with curl
#   cluster  64 concurrent 8 MiB PUTs: 3 nodes on GlusterFS behind HAProxy
#         vs 1 node (cluster.sh; build/bench/cluster.md; root only)
#
# GET 4 KiB and PUT also run a second daemon, "hfslog", identical but with
# logging.access_log writing to a file, so the cost of the access log is
# measured in the same run (BENCH_ACCESS_LOG=0 leaves it out).
#
# Every measurement runs BENCH_RUNS times (default 3), alternating servers,
# and the report gives the median and the range: the machine is shared and
# the numbers are noisy. Results: build/bench/results.md (+ raw.txt).
# Informational only: exits 0 whatever the numbers (never part of make
# check); exits 1 only if it could not measure at all.
#
# Knobs (environment): BENCH_RUNS=3 BENCH_DURATION=10 BENCH_IDLE_CONNS=2000
#   BENCH_BIG_MB=1024 BENCH_ONLY="get4k get1m put idle big cluster"
#   BENCH_ACCESS_LOG=1
#   BENCH_TMPDIR=/tmp (storage for both servers: one filesystem)
#   HFS_BIN=path (default $BUILD/hmac-file-server)
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1     # no __pycache__ in the source tree

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build/rel}
BIN=${HFS_BIN:-$repo/$BUILD/hmac-file-server}
RUNS=${BENCH_RUNS:-3}
DUR=${BENCH_DURATION:-10}
IDLE_CONNS=${BENCH_IDLE_CONNS:-2000}
BIG_MB=${BENCH_BIG_MB:-1024}
ONLY=${BENCH_ONLY:-"get4k get1m put idle big cluster"}
ACCESS_LOG=${BENCH_ACCESS_LOG:-1}
PUT_SIZE=65536
PUT_URLS=60000              # per wrk thread and run; wrk.lua counts wraps
SECRET="bench-secret-$$-$RANDOM"
OUT=$repo/build/bench

die() { echo "bench: $*" >&2; exit 1; }
log() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
want() { case " $ONLY " in *" $1 "*) return 0;; esac; return 1; }

for t in wrk nginx curl python3; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (make deps)"
done
[ -x "$BIN" ] || die "no daemon at $BIN (make)"
nginx -V 2>&1 | grep -q -- --with-http_dav_module \
    || die "this nginx has no dav module (PUT); see docs/performance.md"

# 2000 idle sockets on each side of loopback, plus the servers' own.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((IDLE_CONNS + 200)) ] \
    || die "ulimit -n $(ulimit -n) too low for $IDLE_CONNS connections"

mkdir -p "$OUT" || die "cannot create $OUT"
tmp=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/hfs-bench.XXXXXX") || die "mktemp"
DATA=$tmp/data
STORAGE=$DATA/storage
mkdir -p "$STORAGE" "$DATA/staging" "$DATA/staging-log" "$DATA/nginx-body" \
    "$tmp/nginx" \
    || die mkdir
RAW=$tmp/raw.txt
: >"$RAW"

HFS_PID= NGX_PID= HFS_PORT= NGX_PORT= HFSL_PID= HFSL_PORT= starts=0
ACCESS=$tmp/access.log      # hfslog's access log, emptied after each run

free_port() {
    python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A reaped-or-zombie check: kill -0 succeeds on our own unreaped children.
running() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case $st in Z*) return 1;; esac
    return 0
}

stop_pid() {            # pid: TERM, up to 10 s, then KILL; always reaped
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 100); do
        running "$pid" || break
        sleep 0.1
    done
    running "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

wait_http() {           # port path pid: until any HTTP answer, 10 s
    local i code
    for i in $(seq 100); do
        running "$3" || return 1
        code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' \
               "http://127.0.0.1:$1$2" 2>/dev/null)
        [ -n "$code" ] && [ "$code" != 000 ] && return 0
        sleep 0.1
    done
    return 1
}

# The port is free when free_port looks and may be taken (by any client's
# ephemeral port) before the server binds it: each start tries 3 ports.
start_hfs() {           # [hfslog]: the one with the access log on
    local try
    for try in 1 2 3; do
        try_start_hfs "${1:-hfs}" && return 0
        if [ "${1:-hfs}" = hfs ]; then stop_hfs; else stop_hfslog; fi
    done
    cat "$tmp/hfs.log" >&2
    die "daemon did not start"
}

try_start_hfs() {
    local which=$1 port pid access=off staging=$DATA/staging
    starts=$((starts + 1))
    port=$(free_port)
    [ "$which" = hfslog ] && access=$ACCESS staging=$DATA/staging-log
    cat >"$tmp/$which.conf" <<EOF
server: { listen = [ "127.0.0.1:$port" ]; workers = 2;
          max_connections = 8192; shutdown_grace = 3;
          # 2000 idle connections and wrk all come from 127.0.0.1, as
          # behind a proxy: no per-address limit (docs/security.md).
          max_connections_per_address = 0; max_uploads_per_address = 0; };
storage: { dir = "$STORAGE"; staging = "$staging";
           max_upload_size = "2G"; min_free = "64M"; };
security: { secrets = [ "$SECRET" ]; };
network: { networkchangedetection = false; };
uploads: { shm_name = "/hfs-bench-$$-$starts"; };
logging: { target = "stderr"; level = "warn"; access_log = "$access"; };
EOF
    "$BIN" -f -c "$tmp/$which.conf" >>"$tmp/hfs.log" 2>&1 &
    pid=$!
    if [ "$which" = hfs ]; then
        HFS_PID=$pid HFS_PORT=$port
    else
        HFSL_PID=$pid HFSL_PORT=$port
    fi
    wait_http "$port" /health "$pid"
}

stop_hfs() { stop_pid "$HFS_PID"; HFS_PID=; }
stop_hfslog() { stop_pid "$HFSL_PID"; HFSL_PID=; }

start_nginx() {
    local try
    for try in 1 2 3; do
        try_start_nginx && return 0
        stop_nginx
    done
    cat "$tmp/nginx/error.log" >&2
    die "nginx did not start"
}

try_start_nginx() {
    local user=
    NGX_PORT=$(free_port)
    # As root, nginx's workers would switch to "nobody", which cannot enter
    # the 0700 temp directory: keep the starting identity, like the daemon.
    [ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
    sed -e "s|@USER@|$user|" -e "s|@PREFIX@|$tmp/nginx|g" \
        -e "s|@PORT@|$NGX_PORT|" -e "s|@STORAGE@|$STORAGE|" \
        -e "s|@BODY_TEMP@|$DATA/nginx-body|" \
        "$here/nginx.conf.in" >"$tmp/nginx/nginx.conf"
    nginx -q -t -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
        -e "$tmp/nginx/error.log" || die "nginx config refused"
    nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
        -e "$tmp/nginx/error.log" >>"$tmp/nginx/stderr.log" 2>&1 &
    NGX_PID=$!
    wait_http "$NGX_PORT" / "$NGX_PID"
}

stop_nginx() { stop_pid "$NGX_PID"; NGX_PID=; }

cleanup() {
    stop_hfs
    stop_hfslog
    stop_nginx
    rm -f /dev/shm/hfs-bench-$$-* 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_of() {
    case $1 in hfs) echo "$HFS_PORT";; hfslog) echo "$HFSL_PORT";;
               *) echo "$NGX_PORT";; esac
}
pid_of() {
    case $1 in hfs) echo "$HFS_PID";; hfslog) echo "$HFSL_PID";;
               *) echo "$NGX_PID";; esac
}

# The servers of a wrk test in run $2: for get4k and put also ours with the
# access log on. Three servers take turns at going first (run 1: hfs,
# 2: hfslog, 3: nginx), so none always runs in the same place (a slow
# drift of the machine's load would favour one); two keep the old order.
servers_of() {
    local test=$1 run=$2 s
    local -a l=(hfs nginx)
    case $test in get4k|put) [ "$ACCESS_LOG" = 1 ] && l=(hfs hfslog nginx);;
    esac
    [ ${#l[@]} = 2 ] && { echo "${l[*]}"; return; }
    s=$(( (run - 1) % 3 ))
    echo "${l[*]:s} ${l[*]:0:s}"
}

# After a run of hfslog: how many lines it wrote (the report checks one
# per request), then empty the file so the disk does not fill up.
access_lines() {
    record "accesslog hfslog $2 test=$1 lines=$(wc -l <"$ACCESS")" \
           "bytes=$(stat -c %s "$ACCESS")"
    : >"$ACCESS"
}
cpu_ms() { python3 "$here/proctree.py" cpu "$(pid_of "$1")"; }

record() { echo "$*" >>"$RAW"; }

# test server run: wrk with our script; its BENCHRESULT line into raw,
# with the CPU time the server's processes used meanwhile.
run_wrk() {
    local test=$1 srv=$2 run=$3; shift 3
    local line c0 c1
    c0=$(cpu_ms "$srv")
    line=$(wrk "$@" -s "$here/wrk.lua" 2>&1 | grep '^BENCHRESULT') \
        || { log "  $test $srv run $run: wrk failed"; return 1; }
    c1=$(cpu_ms "$srv")
    line="${line#BENCHRESULT } server_cpu_ms=$((c1 - c0))"
    record "$test $srv $run $line"
    log "  $test $srv run $run: $line"
}

seed_files() {
    local size t
    for size in 4096 1048576; do
        head -c "$size" /dev/urandom >"$tmp/seed.$size"
        t=$(python3 "$here/sign_urls.py" --secret "$SECRET" --size "$size" \
            --one "get/$size.bin")
        [ "$(curl -s -m 30 -o /dev/null -w '%{http_code}' -H 'Expect:' \
             -T "$tmp/seed.$size" "http://127.0.0.1:$HFS_PORT$t")" = 201 ] \
            || { cat "$tmp/hfs.log" >&2
                 die "cannot store the GET test file of $size bytes"; }
        for srv in hfs nginx ${HFSL_PID:+hfslog}; do
            curl -s -m 30 -o "$tmp/check" \
                "http://127.0.0.1:$(port_of $srv)/get/$size.bin"
            cmp -s "$tmp/check" "$tmp/seed.$size" \
                || die "$srv does not serve the test file of $size bytes"
        done
    done
}

bench_get() {           # test size
    local test=$1 size=$2 run srv
    log "$test: wrk -t2 -c64 -d${DUR}s GET /get/$size.bin"
    for run in $(seq "$RUNS"); do
        for srv in $(servers_of "$test" "$run"); do
            [ "$srv" = hfslog ] && : >"$ACCESS"
            run_wrk "$test" "$srv" "$run" -t2 -c64 -d"${DUR}s" \
                "http://127.0.0.1:$(port_of $srv)/get/$size.bin"
            [ "$srv" = hfslog ] && access_lines "$test" "$run"
        done
    done
}

bench_put() {
    local run srv tag stored
    log "put: wrk -t2 -c16 -d${DUR}s PUT ${PUT_SIZE} B, a new URL each"
    for run in $(seq "$RUNS"); do
        for srv in $(servers_of put "$run"); do
            tag=p$run$srv
            python3 "$here/sign_urls.py" --secret "$SECRET" --size "$PUT_SIZE" \
                --tag "$tag" --threads 2 --count "$PUT_URLS" \
                --out "$tmp/urls" $([ "$srv" = nginx ] && echo --unsigned) \
                || die "sign_urls.py failed"
            # Start each run with a clean disk queue: the previous run's
            # dirty pages must not be flushed on this one's time.
            sync -f "$STORAGE"
            [ "$srv" = hfslog ] && : >"$ACCESS"
            BENCH_URLS=$tmp/urls BENCH_BODY=$PUT_SIZE \
                run_wrk put "$srv" "$run" -t2 -c16 -d"${DUR}s" \
                "http://127.0.0.1:$(port_of $srv)/"
            [ "$srv" = hfslog ] && access_lines put "$run"
            stored=$(find "$STORAGE" -mindepth 1 -maxdepth 1 -name "$tag-*" |
                     wc -l)
            record "putstored $srv $run stored=$stored body=$PUT_SIZE"
            find "$STORAGE" -mindepth 1 -maxdepth 1 -name "$tag-*" \
                -exec rm -rf {} +
        done
    done
    rm -f "$tmp"/urls.*
    sync -f "$STORAGE"
}

bench_big() {
    local bytes=$((BIG_MB * 1048576)) run srv target res c0 c1
    log "big: one ${BIG_MB} MiB PUT with curl"
    truncate -s "$bytes" "$tmp/big.src"    # sparse: reading it costs no disk
    for run in $(seq "$RUNS"); do
        for srv in hfs nginx; do
            if [ "$srv" = hfs ]; then
                target=$(python3 "$here/sign_urls.py" --secret "$SECRET" \
                         --size "$bytes" --one "big-$run/big.bin")
            else
                target=/big-n$run/big.bin
            fi
            sync -f "$STORAGE"
            c0=$(cpu_ms "$srv")
            res=$(curl -sS -m 300 -o /dev/null -H 'Expect:' -T "$tmp/big.src" \
                  -w '%{http_code} %{time_total}' \
                  "http://127.0.0.1:$(port_of $srv)$target") || res="000 0"
            c1=$(cpu_ms "$srv")
            record "big $srv $run status=${res% *} seconds=${res#* }" \
                   "bytes=$bytes server_cpu_ms=$((c1 - c0))"
            log "  big $srv run $run: status ${res% *}, ${res#* } s," \
                "server CPU $((c1 - c0)) ms"
            rm -rf "$STORAGE/big-$run" "$STORAGE/big-n$run"
        done
    done
    rm -f "$tmp/big.src"
    sync -f "$STORAGE"
}

bench_idle() {
    local run srv line
    log "idle: $IDLE_CONNS idle keep-alive connections, fresh servers"
    for run in $(seq "$RUNS"); do
        for srv in hfs nginx; do
            if [ "$srv" = hfs ]; then
                start_hfs
                line=$(python3 "$here/idle_conns.py" --port "$HFS_PORT" \
                       --path /health --count "$IDLE_CONNS" --pid "$HFS_PID")
                stop_hfs
            else
                start_nginx
                line=$(python3 "$here/idle_conns.py" --port "$NGX_PORT" \
                       --path /get/4096.bin --count "$IDLE_CONNS" \
                       --pid "$NGX_PID")
                stop_nginx
            fi
            line=$(printf '%s\n' "$line" | grep '^IDLERESULT') \
                || { log "  idle $srv run $run: failed"; continue; }
            record "idle $srv $run ${line#IDLERESULT }"
            log "  idle $srv run $run: ${line#IDLERESULT }"
        done
    done
}

machine() {
    local cpu fs dev rev journal=unknown
    cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    fs=$(df -PT "$STORAGE" | awk 'NR==2{print $2}')
    dev=$(basename "$(df -P "$STORAGE" | awk 'NR==2{print $1}')")
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
           "load_start=$(cut -d' ' -f1 /proc/loadavg)"
}

t0=$(date +%s)
machine
start_hfs
start_nginx
[ "$ACCESS_LOG" = 1 ] && start_hfs hfslog
log "daemon on :$HFS_PORT (pid $HFS_PID), nginx on :$NGX_PORT" \
    "(pid $NGX_PID), data in $DATA" \
    "${HFSL_PID:+; with access log: :$HFSL_PORT (pid $HFSL_PID)}"
seed_files
want get4k && bench_get get4k 4096
want get1m && bench_get get1m 1048576
want put && bench_put
want big && bench_big
stop_hfs
stop_hfslog
stop_nginx
want idle && bench_idle
# The cluster row starts its own servers and Gluster volume (cluster.sh).
want cluster && bash "$here/cluster.sh"
log "done in $(( $(date +%s) - t0 )) s"
record "machine - - load_end=$(cut -d' ' -f1 /proc/loadavg)" \
       "seconds=$(( $(date +%s) - t0 ))"

# (run.sh's own readiness probe of "/" is logged as a forbidden index.)
grep -E '\[(error|crit|alert|emerg)\]' "$tmp/nginx/error.log" 2>/dev/null |
    grep -v 'directory index of' | head -5 | sed 's/^/nginx log: /' >&2
grep -E 'error|fatal|ERROR' "$tmp/hfs.log" 2>/dev/null | head -5 |
    sed 's/^/daemon log: /' >&2
# A worker that died mid-run was respawned by the master and the numbers
# look plausible: say so next to them.
deaths=$(grep -cE '\[error\].*worker [0-9]+ \(pid' "$tmp/hfs.log")
record "daemonlog - - worker_deaths=$deaths"
cp "$RAW" "$OUT/raw.txt"
python3 "$here/report.py" "$RAW" "$OUT/results.md" || log "report failed"
exit 0
