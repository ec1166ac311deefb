-- wrk.lua: one machine-readable result line for run.sh, and (when
-- BENCH_URLS is set) PUT uploads to a fresh URL per request.
--
-- GET: wrk's static request is used (no request() function), so the Lua
-- state costs nothing per request; only done() below runs, once.
--
-- PUT: BENCH_URLS=FILE reads FILE.<thread number> (from sign_urls.py), one
-- target a line, and sends each once with a BENCH_BODY-byte body. Every
-- upload must be new: a repeated URL would be answered 200 "identical"
-- without a publish (ours) or overwrite in place (nginx), so a thread that
-- runs out of URLs wraps around but counts it, and run.sh reports it.

local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end

local urls_base = os.getenv("BENCH_URLS")

if urls_base then
    local urls, n, body

    function init(args)
        urls = {}
        for line in io.lines(urls_base .. "." .. tid) do
            urls[#urls + 1] = line
        end
        local size = tonumber(os.getenv("BENCH_BODY") or "65536")
        -- 64 distinct bytes repeated: content is irrelevant to both servers
        -- (neither compresses), only its length matters.
        local pat = "0123456789abcdefghijklmnopqrstuvwxyz"
            .. "ABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
        body = string.rep(pat, math.floor(size / #pat))
            .. string.sub(pat, 1, size % #pat)
        n = 0
        wrapped = 0
    end

    function request()
        n = n + 1
        if n > #urls then
            n = 1
            wrapped = wrapped + 1
        end
        return wrk.format("PUT", urls[n], nil, body)
    end
end

function done(summary, latency, requests)
    local wrapped = 0
    for _, t in ipairs(threads) do
        wrapped = wrapped + (t:get("wrapped") or 0)
    end
    local e = summary.errors
    io.write(string.format(
        "BENCHRESULT requests=%d duration_us=%d bytes=%d p50_us=%d " ..
        "p99_us=%d err_connect=%d err_read=%d err_write=%d err_status=%d " ..
        "err_timeout=%d wrapped=%d\n",
        summary.requests, summary.duration, summary.bytes,
        math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
        e.connect, e.read, e.write, e.status, e.timeout, wrapped))
end
