-- wrk.lua: one machine-readable result line for run.sh's GET rows.
--
-- wrk's static request is used (no request() function), so the Lua state
-- costs nothing per request; only done() below runs, once. (Uploads are
-- driven by tests/tools/put_driver.c, which stops after a fixed number.)

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCHRESULT requests=%d duration_us=%d bytes=%d p50_us=%d " ..
        "p99_us=%d err_connect=%d err_read=%d err_write=%d err_status=%d " ..
        "err_timeout=%d\n",
        summary.requests, summary.duration, summary.bytes,
        math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
        e.connect, e.read, e.write, e.status, e.timeout))
end
