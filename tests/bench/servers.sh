# tests/bench/servers.sh: starting and stopping the servers of run.sh
# (sourced; uses its globals PID PORT ROOT STAGING MODE SERVERS BASE tmp).

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

# conf port root staging access_log mode ("" = no storage.sync key)
write_hfs_conf() {
    local sync=
    [ -n "$6" ] && sync="sync = \"$6\";"
    starts=$((starts + 1))
    cat >"$1" <<EOF
server: { listen = [ "127.0.0.1:$2" ]; workers = 2;
          max_connections = 8192; shutdown_grace = 3;
          # 2000 idle connections and the load all come from 127.0.0.1,
          # as behind a proxy: no per-address limit (docs/security.md).
          max_connections_per_address = 0; max_uploads_per_address = 0; };
storage: { dir = "$3"; staging = "$4"; $sync
           max_upload_size = "2G"; min_free = "64M"; };
security: { secrets = [ "$SECRET" ]; };
network: { networkchangedetection = false; };
uploads: { shm_name = "/hfs-bench-$$-$starts"; };
logging: { target = "stderr"; level = "warn"; access_log = "$5"; };
EOF
}

# Every server's storage under BASE (the phase's filesystem).
make_storage() {
    local s=$1
    ROOT[$s]=$BASE/$s/root
    STAGING[$s]=$BASE/$s/staging
    mkdir -p "${ROOT[$s]}" "${STAGING[$s]}" || die "mkdir under $BASE"
}

try_start_hfs() {
    local s=$1 access=off
    [ "$s" = hfslog ] && access=$ACCESS
    PORT[$s]=$(free_port)
    write_hfs_conf "$tmp/$s.conf" "${PORT[$s]}" "${ROOT[$s]}" \
        "${STAGING[$s]}" "$access" "${MODE[$s]-}"
    "$BIN" -f -c "$tmp/$s.conf" >>"$tmp/$s.log" 2>&1 &
    PID[$s]=$!
    wait_http "${PORT[$s]}" /health "${PID[$s]}"
}

try_start_nginx() {
    local user=
    PORT[nginx]=$(free_port)
    # As root, nginx's workers would switch to "nobody", which cannot enter
    # the 0700 temp directory: keep the starting identity, like the daemon.
    [ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
    mkdir -p "$BASE/nginx/body"
    sed -e "s|@USER@|$user|" -e "s|@PREFIX@|$tmp/nginx|g" \
        -e "s|@PORT@|${PORT[nginx]}|" -e "s|@STORAGE@|${ROOT[nginx]}|" \
        -e "s|@BODY_TEMP@|$BASE/nginx/body|" \
        "$here/nginx.conf.in" >"$tmp/nginx/nginx.conf"
    nginx -q -t -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
        -e "$tmp/nginx/error.log" || die "nginx config refused"
    nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
        -e "$tmp/nginx/error.log" >>"$tmp/nginx/stderr.log" 2>&1 &
    PID[nginx]=$!
    wait_http "${PORT[nginx]}" / "${PID[nginx]}"
}

# The port is free when free_port looks and may be taken (by any client's
# ephemeral port) before the server binds it: each start tries 3 ports.
start_server() {
    local s=$1 try
    [ -n "${ROOT[$s]-}" ] || make_storage "$s"
    for try in 1 2 3; do
        if [ "$s" = nginx ]; then try_start_nginx; else try_start_hfs "$s"
        fi && return 0
        stop_server "$s"
    done
    [ "$s" = nginx ] && cat "$tmp/nginx/error.log" >&2
    [ "$s" = nginx ] || tail -20 "$tmp/$s.log" >&2
    die "$s did not start"
}

stop_server() { stop_pid "${PID[$1]-}"; PID[$1]= TREE[$1]=; }
start_all() {
    local s
    for s in "${SERVERS[@]}"; do start_server "$s"; done
    log "servers: $(for s in "${SERVERS[@]}"; do
        printf '%s :%s (pid %s)  ' "$s" "${PORT[$s]}" "${PID[$s]}"; done)"
}
stop_all() { local s; for s in "${!PID[@]}"; do stop_server "$s"; done; }
forget_storage() { ROOT=() STAGING=(); }

is_daemon() { [ "$1" != nginx ]; }

# CPU_MS = the CPU time (user + system, all threads) a server's process
# tree has used so far, ms. The tree is looked up once (and again if one of
# its processes is gone: a worker respawned); no subshell, so TREE keeps it.
HZ=$(getconf CLK_TCK)
cpu_ms() {
    local s=$1 p f ticks=0
    for p in ${TREE[$s]-}; do
        [ -e "/proc/$p" ] || { TREE[$s]=; break; }
    done
    [ -n "${TREE[$s]-}" ] ||
        TREE[$s]=$(python3 "$here/proctree.py" pids "${PID[$s]}")
    for p in ${TREE[$s]}; do
        read -r f <"/proc/$p/stat" 2>/dev/null || continue
        f=${f##*) }
        set -- $f
        ticks=$((ticks + ${12} + ${13}))        # utime, stime
    done
    CPU_MS=$((ticks * 1000 / HZ))
}

# Signed for the daemon, plain for nginx: "rel size" -> request target.
target_of() {
    if is_daemon "$1"; then
        python3 "$here/sign_urls.py" --secret "$SECRET" --size "$3" --one "$2"
    else
        echo "/$2"
    fi
}
secret_args() { is_daemon "$1" && echo "--secret $SECRET"; }

# The servers of a test in run $2, taking turns at going first (run 1: the
# first of the list, run 2: the second, ...), so that a slow drift of the
# machine's load favours none of them.
servers_of() {
    local test=$1 run=$2 s
    local -a l=()
    for s in "${SERVERS[@]}"; do
        case $s:$test in
            hfslog:get4k|hfslog:put4k) l+=("$s");;
            hfslog:*) ;;
            nginx:chunked) ;;
            *) l+=("$s");;
        esac
    done
    s=$(( (run - 1) % ${#l[@]} ))
    echo "${l[*]:s} ${l[*]:0:s}"
}

# The syncs the daemon counted (hfs_syncs_total), or -1 without the metric.
syncs_of() {
    is_daemon "$1" || { echo -1; return; }
    curl -s -m 5 "http://127.0.0.1:${PORT[$1]}/metrics" 2>/dev/null |
        awk '/^hfs_syncs_total[{ ]/ { s += $NF; n++ }
             END { print n ? s : -1 }'
}

# Errors the servers logged, and workers that died mid-run (the master
# respawns them and the numbers look plausible: say so next to them).
report_logs() {
    local s deaths
    # (run.sh's own readiness probe of "/" is logged as a forbidden index.)
    grep -E '\[(error|crit|alert|emerg)\]' "$tmp/nginx/error.log" 2>/dev/null |
        grep -v 'directory index of' | head -5 | sed 's/^/nginx log: /' >&2
    for s in "${SERVERS[@]}"; do
        is_daemon "$s" && [ -f "$tmp/$s.log" ] || continue
        grep -E 'error|fatal|ERROR' "$tmp/$s.log" | head -5 |
            sed "s/^/$s log: /" >&2
        deaths=$(grep -cE '\[error\].*worker [0-9]+ \(pid' "$tmp/$s.log")
        record "daemonlog $s - worker_deaths=$deaths"
    done
}
