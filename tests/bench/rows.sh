# tests/bench/rows.sh: the measurements of run.sh, one function per row
# (sourced). Each writes "TEST SERVER RUN key=value ..." lines with record;
# in the journaled phase TEST carries the prefix "j.".

SEED=$tmp/seed

# The bodies: random small files, sparse large ones (reading them costs
# no disk; neither server looks at the bytes).
make_seeds() {
    head -c 4096 /dev/urandom >"$SEED/4096"
    head -c 1048576 /dev/urandom >"$SEED/1048576"
    head -c $((MANY_MB << 20)) /dev/urandom >"$SEED/many"
    truncate -s $((CHUNKED_MB << 20)) "$SEED/chunked"
    truncate -s $((BIG_MB << 20)) "$SEED/big"
}

seed_get_files() {
    local size s t
    for size in 4096 1048576; do
        for s in "${SERVERS[@]}"; do
            t=$(target_of "$s" "get/$size.bin" "$size")
            [ "$(curl -s -m 30 -o /dev/null -w '%{http_code}' -H 'Expect:' \
                 -T "$SEED/$size" "http://127.0.0.1:${PORT[$s]}$t")" = 201 ] \
                || die "$s: cannot store the GET test file of $size bytes"
            curl -s -m 30 -o "$tmp/check" \
                "http://127.0.0.1:${PORT[$s]}/get/$size.bin"
            cmp -s "$tmp/check" "$SEED/$size" \
                || die "$s does not serve the test file of $size bytes"
        done
    done
}

# Before each upload run: the previous run's dirty pages (nginx and
# storage.sync = "off" leave them) must not be written back on its time.
settle() { sync -f "$BASE"; }

# After a run of hfslog: how many lines it wrote (the report checks one
# per request), then empty the file so the disk does not fill up.
access_lines() {
    record "accesslog hfslog $2 test=$1 lines=$(wc -l <"$ACCESS")" \
           "bytes=$(stat -c %s "$ACCESS")"
    : >"$ACCESS"
}

# test server run command...: the command's RESULT line into raw, with the
# CPU time the server's processes used meanwhile (and the syncs it made).
measure() {
    local test=$1 s=$2 run=$3; shift 3
    local line c0 c1 y0 y1
    [ "$s" = hfslog ] && : >"$ACCESS"
    cpu_ms "$s"; c0=$CPU_MS y0=$(syncs_of "$s")
    line=$("$@" 2>&1 | grep -E '^(BENCH|DRIVER)RESULT ')
    [ -n "$line" ] || { log "  $PHASE$test $s run $run: no result"; return 1; }
    cpu_ms "$s"; c1=$CPU_MS y1=$(syncs_of "$s")
    line="${line#* } server_cpu_ms=$((c1 - c0))"
    [ "$y0" -ge 0 ] && line="$line syncs=$((y1 - y0))"
    record "$PHASE$test $s $run $line"
    log "  $PHASE$test $s run $run: $line"
    [ "$s" = hfslog ] && access_lines "$test" "$run"
    return 0
}

driver() { "$TOOLS/put_driver" --port "${PORT[$1]}" $(secret_args "$1") \
               "${@:2}"; }

# ---- limits ----------------------------------------------------------------

row_limits() {
    local run line dir=$BASE/limits t
    local -a got
    log "${PHASE}limits: loopback TCP, ${BIG_MB} MiB with fdatasync," \
        "durable 4 KiB uploads (16 threads, at most $CEIL_COUNT)"
    mkdir -p "$dir" || die "mkdir $dir"
    for run in $(seq "$RUNS"); do
        if [ -z "$PHASE" ]; then
            line=$("$TOOLS/tcp_ceiling" --seconds 2 | grep '^TCPRESULT') &&
                record "tcp - $run ${line#* }" && got+=("tcp ${line##*=} MB/s")
        fi
        got=()
        sync -f "$dir"
        line=$(dd if=/dev/zero of="$dir/seq" bs=1M count="$BIG_MB" \
               conv=fdatasync 2>&1 | sed -nE \
               's/^([0-9]+) bytes.* copied, ([0-9.e+-]+) s,.*/bytes=\1 seconds=\2/p')
        [ -n "$line" ] && record "${PHASE}seqwrite - $run $line" &&
            got+=("seq+fdatasync ${line#*seconds=} s")
        rm -f "$dir/seq"
        sync -f "$dir"
        # Its files stay until the phase's storage goes in one rm -rf.
        mkdir -p "$dir/d$run"
        line=$("$TOOLS/durable_ceiling" --dir "$dir/d$run" --threads 16 \
               --count "$CEIL_COUNT" --seconds 10 | grep '^DURABLERESULT') &&
            record "${PHASE}durable - $run ${line#* }" &&
            t=${line#*per_s=} && got+=("durable ${t%% *}/s")
        log "  ${PHASE}limits run $run: ${got[*]}"
    done
}

# ---- GET -------------------------------------------------------------------

row_get() {             # test size
    local test=$1 size=$2 run s
    log "$test: wrk -t2 -c64 -d${DUR}s GET /get/$size.bin"
    for run in $(seq "$RUNS"); do
        for s in $(servers_of "$test" "$run"); do
            measure "$test" "$s" "$run" wrk -t2 -c64 -d"${DUR}s" \
                -s "$here/wrk.lua" "http://127.0.0.1:${PORT[$s]}/get/$size.bin"
        done
    done
}
row_get4k() { row_get get4k 4096; }
row_get1m() { row_get get1m 1048576; }

# ---- PUT -------------------------------------------------------------------

row_put4k() {
    local run s tag
    log "${PHASE}put4k: 4 KiB PUTs, 16 connections, a fresh URL each," \
        "at most $PUT_COUNT or ${PUT_SECONDS} s"
    for run in $(seq "$RUNS"); do
        for s in $(servers_of put4k "$run"); do
            tag=p$run
            settle
            measure put4k "$s" "$run" driver "$s" --file "$SEED/4096" \
                --prefix "$tag" --conns 16 --count "$PUT_COUNT" \
                --seconds "$PUT_SECONDS" || continue
            record "${PHASE}putstored $s $run stored=$(find "${ROOT[$s]}" \
                -mindepth 1 -maxdepth 1 -name "$tag-*" | wc -l)"
        done
    done
}

row_many() {
    local run s
    log "${PHASE}many: $MANY concurrent PUTs of $MANY_MB MiB"
    for run in $(seq "$RUNS"); do
        for s in $(servers_of many "$run"); do
            settle
            measure many "$s" "$run" driver "$s" --file "$SEED/many" \
                --prefix "m$run" --conns "$MANY" --count "$MANY"
            rm -rf "${ROOT[$s]}"/m"$run"-*
        done
    done
}

row_big() {
    local run s t
    log "${PHASE}big: one ${BIG_MB} MiB PUT with curl"
    for run in $(seq "$RUNS"); do
        for s in $(servers_of big "$run"); do
            t=$(target_of "$s" "big-$run/big.bin" $((BIG_MB << 20)))
            settle
            measure big "$s" "$run" curl_put "$SEED/big" \
                "http://127.0.0.1:${PORT[$s]}$t"
            rm -rf "${ROOT[$s]}/big-$run"
        done
    done
}

# One upload with curl, as a RESULT line like the driver's.
curl_put() {
    local res
    res=$(curl -sS -m 600 -o /dev/null -H 'Expect:' -T "$1" \
          -w '%{http_code} %{time_total} %{size_upload}' "$2") || res="000 0 0"
    set -- $res
    echo "BENCHRESULT status=$1 seconds=$2 bytes=$3"
}

# Chunked, then the same file as one plain PUT (in odd runs; the other
# way round in even ones), for each daemon: their time ratio.
row_chunked() {
    local run s kind
    log "${PHASE}chunked: ${CHUNKED_MB} MiB in ${CHUNK_MB} MiB chunks vs" \
        "one plain PUT"
    for run in $(seq "$RUNS"); do
        for s in $(servers_of chunked "$run"); do
            for kind in $( ((run % 2)) && echo "chunked plain" ||
                           echo "plain chunked"); do
                settle
                if [ "$kind" = chunked ]; then
                    measure chunked "$s" "$run" driver "$s" \
                        --file "$SEED/chunked" --prefix "c$run" \
                        --chunk $((CHUNK_MB << 20))
                else
                    measure chunkplain "$s" "$run" driver "$s" \
                        --file "$SEED/chunked" --prefix "cp$run"
                fi
                rm -rf "${ROOT[$s]}"/c"$run"-0 "${ROOT[$s]}"/cp"$run"-0
            done
        done
    done
}

# ---- idle ------------------------------------------------------------------

row_idle() {
    local run s line path
    local -a l=("${DAEMONS[0]}" nginx)
    log "idle: $IDLE_CONNS idle keep-alive connections, fresh servers"
    forget_storage
    make_storage nginx
    mkdir -p "${ROOT[nginx]}/get" && cp "$SEED/4096" "${ROOT[nginx]}/get/4096.bin"
    for run in $(seq "$RUNS"); do
        for s in "${l[@]}"; do
            path=/health
            [ "$s" = nginx ] && path=/get/4096.bin
            start_server "$s"
            line=$(python3 "$here/idle_conns.py" --port "${PORT[$s]}" \
                   --path "$path" --count "$IDLE_CONNS" --pid "${PID[$s]}")
            stop_server "$s"
            line=$(printf '%s\n' "$line" | grep '^IDLERESULT') \
                || { log "  idle $s run $run: failed"; continue; }
            record "idle $s $run ${line#IDLERESULT }"
            log "  idle $s run $run: ${line#IDLERESULT }"
        done
    done
}

# ---- the journaled image ---------------------------------------------------

journal_phase() {
    [ "$(id -u)" = 0 ] || { log "BENCH_JOURNAL=1 needs root: skipped"
                            record "journal - - skipped=not_root"; return; }
    JIMG=$tmp/journal.img JMNT=$tmp/j
    mkdir -p "$JMNT"
    truncate -s "${JOURNAL_GB}G" "$JIMG"
    if ! mkfs.ext4 -q -F "$JIMG" || ! mount -o loop "$JIMG" "$JMNT"; then
        log "BENCH_JOURNAL=1: cannot make or mount the image: skipped"
        record "journal - - skipped=mount_failed"
        JMNT=
        return
    fi
    record "machine - - j.fs=ext4 j.journal=yes j.size=${JOURNAL_GB}G"
    PHASE=j. BASE=$JMNT
    forget_storage
    want limits && row_limits
    if want put4k || want many || want big || want chunked; then
        start_all
        run_phase "put4k many big chunked"
        stop_all
    fi
    umount "$JMNT" && JMNT=
    rm -f "$JIMG"
    PHASE= BASE=$tmp/data
}
