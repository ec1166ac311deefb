"""The tools of `make bench` (docs/performance.md), on tiny sizes: they build,
measure what they say and print sane numbers; the report renders its tables
and verdicts from sample raw lines; the upload driver stores byte-identical
files in a real daemon; and run.sh itself completes a one-run bench of a few
rows against the daemon and nginx.

No timing is asserted anywhere: speed is what `make bench` reports, never
what a test checks.
"""

import os
import re
import shutil
import subprocess
import tempfile

import hfs

TOOLS = os.path.dirname(hfs.HFS_BIN)
BENCH = os.path.join(hfs.REPO, "tests", "bench")


def _tool(name):
    path = os.path.join(TOOLS, name)
    assert os.access(path, os.X_OK), "%s not built (make check builds it)" % path
    return path


def _result(out, tag):
    """key=value pairs of the one TAG line of out."""
    lines = [ln for ln in out.splitlines() if ln.startswith(tag + " ")]
    assert len(lines) == 1, out
    return dict(p.split("=", 1) for p in lines[0].split()[1:])


def _run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          **kw)


def test_tcp_ceiling_carries_the_bytes_it_reports():
    p = _run([_tool("tcp_ceiling"), "--bytes", "8000000", "--seconds", "20"])
    assert p.returncode == 0, p.stderr
    r = _result(p.stdout, "TCPRESULT")
    assert int(r["bytes"]) == 8000000, r
    assert float(r["seconds"]) > 0 and float(r["mbs"]) > 0, r
    assert abs(float(r["mbs"]) - 8.0 / float(r["seconds"])) < 0.01 * float(
        r["mbs"]) + 0.2, r


def test_durable_ceiling_publishes_every_file_as_the_daemon_does():
    d = tempfile.mkdtemp(prefix="hfs-it-ceiling-")
    try:
        p = _run([_tool("durable_ceiling"), "--dir", d, "--threads", "4",
                  "--count", "40", "--size", "4096"])
        assert p.returncode == 0, p.stderr
        r = _result(p.stdout, "DURABLERESULT")
        assert r["uploads"] == "40" and r["threads"] == "4", r
        assert float(r["per_s"]) > 0 and int(r["syncs"]) >= 1, r
        names = sorted(os.listdir(os.path.join(d, "storage")))
        assert names == sorted("u%d" % i for i in range(40)), names
        for n in names:
            f = os.path.join(d, "storage", n, "b.bin")
            assert os.stat(f).st_size == 4096 and os.stat(f).st_nlink == 1
            assert os.stat(f).st_mode & 0o7777 == 0o644
        assert os.listdir(os.path.join(d, "staging")) == []
        # A second run into the same directory would mix its files in.
        p = _run([_tool("durable_ceiling"), "--dir", d, "--count", "1"])
        assert p.returncode != 0 and "storage" in p.stderr, p
    finally:
        shutil.rmtree(d, True)


def _driver(d, *args, signed=True):
    argv = [_tool("put_driver"), "--port", str(d.port)] + list(args)
    if signed:
        argv += ["--secret", hfs.SECRET]
    return _run(argv)


def test_put_driver_stores_byte_identical_files():
    with hfs.Daemon() as d:
        src, _ = hfs.make_file(10000)
        p = _driver(d, "--file", src, "--prefix", "t", "--conns", "3",
                    "--count", "7")
        assert p.returncode == 0, p.stdout + p.stderr
        r = _result(p.stdout, "DRIVERRESULT")
        assert (r["uploads"], r["ok"], r["status_201"]) == ("7", "7", "7"), r
        assert int(r["bytes"]) == 70000, r
        want = open(src, "rb").read()
        for i in range(7):
            assert d.get("t-%d/b.bin" % i).body == want, i
        # A deadline stops it early, and what it did is still counted.
        p = _driver(d, "--file", src, "--prefix", "late", "--count", "100000",
                    "--seconds", "0.3")
        r = _result(p.stdout, "DRIVERRESULT")
        assert 0 < int(r["ok"]) == int(r["uploads"]) < 100000, r


def test_put_driver_chunked_upload_is_one_file():
    with hfs.Daemon() as d:
        src, _ = hfs.make_file(300001)
        p = _driver(d, "--file", src, "--prefix", "c", "--chunk", "100000")
        assert p.returncode == 0, p.stdout + p.stderr
        r = _result(p.stdout, "DRIVERRESULT")
        # Four chunks: three held (200), the last completes the file (201).
        assert (r["requests"], r["status_200"], r["status_201"]) == (
            "4", "3", "1"), r
        assert r["chunk"] == "100000" and r["ok"] == "1", r
        assert d.get("c-0/b.bin").body == open(src, "rb").read()


def test_put_driver_counts_refused_uploads_as_failed():
    with hfs.Daemon() as d:
        src, _ = hfs.make_file(100)
        p = _driver(d, "--file", src, "--prefix", "u", "--count", "2",
                    signed=False)
        assert p.returncode == 1, p.stdout
        r = _result(p.stdout, "DRIVERRESULT")
        assert (r["ok"], r["failed"], r["status_403"]) == ("0", "2", "2"), r


SAMPLE = """\
machine - - cpus=2 kernel=6.1 cpu=Test_CPU
machine - - rev=abc1234 bin=build/rel/hmac-file-server date=2026-12-05T22:00Z
machine - - fs=ext4 journal=no duration=5 runs=3 discard=yes load_start=1.0
sync always - status=default
tcp - 1 bytes=1 seconds=1 mbs=2000.0
tcp - 2 bytes=1 seconds=1 mbs=2400.0
seqwrite - 1 bytes=1073741824 seconds=1.0
durable - 1 uploads=2000 seconds=1 per_s=2000.0 threads=16 syncs=4
put4k always 1 uploads=2000 ok=2000 failed=0 seconds=2.0 bytes=8192000 requests=2000 p50_us=14000 p99_us=40000 io_errors=0 status_201=2000 server_cpu_ms=1100 syncs=8000
put4k always 2 uploads=2000 ok=2000 failed=0 seconds=1.0 bytes=8192000 requests=2000 p50_us=12000 p99_us=30000 io_errors=0 status_201=2000 server_cpu_ms=1000 syncs=8000
put4k nginx 1 uploads=2000 ok=2000 failed=0 seconds=0.25 bytes=8192000 requests=2000 p50_us=2000 p99_us=8000 io_errors=0 status_201=2000 server_cpu_ms=400
put4k nginx 2 uploads=2000 ok=1990 failed=10 seconds=0.25 bytes=8192000 requests=2000 p50_us=2000 p99_us=8000 io_errors=10 status_201=1990 server_cpu_ms=400
putstored always 1 stored=1999
many always 1 uploads=64 ok=64 failed=0 seconds=1.0 bytes=536870912 requests=64 p50_us=1 p99_us=1 status_201=64 server_cpu_ms=500
many nginx 1 uploads=64 ok=64 failed=0 seconds=0.5 bytes=536870912 requests=64 p50_us=1 p99_us=1 status_201=64 server_cpu_ms=500
big always 1 status=201 seconds=2.0 bytes=1073741824 server_cpu_ms=400
big nginx 1 status=503 seconds=0.1 bytes=1073741824 server_cpu_ms=10
chunked always 1 uploads=1 ok=1 failed=0 seconds=3.0 bytes=268435456 requests=52 p50_us=1 p99_us=1 status_200=51 status_201=1 chunk=5242880 server_cpu_ms=1
chunkplain always 1 uploads=1 ok=1 failed=0 seconds=2.0 bytes=268435456 requests=1 p50_us=1 p99_us=1 status_201=1 server_cpu_ms=1
get4k always 1 requests=200000 duration_us=5000000 bytes=1 p50_us=1000 p99_us=50000 err_connect=0 err_read=0 err_write=0 err_status=0 err_timeout=0 server_cpu_ms=4000
get4k nginx 1 requests=190000 duration_us=5000000 bytes=1 p50_us=1000 p99_us=10000 err_connect=0 err_read=0 err_write=0 err_status=0 err_timeout=0 server_cpu_ms=4000
idle always 1 conns=2000 procs=3 rss_before_kib=1 rss_after_kib=1 pss_before_kib=20480 pss_after_kib=1 rss_per_conn_b=600 pss_per_conn_b=580 closed=0
j.put4k always 1 uploads=500 ok=500 failed=0 seconds=1.0 bytes=2048000 requests=500 p50_us=1 p99_us=1 status_201=500 server_cpu_ms=200
j.put4k nginx 1 uploads=500 ok=500 failed=0 seconds=0.1 bytes=2048000 requests=500 p50_us=1 p99_us=1 status_201=500 server_cpu_ms=100
j.durable - 1 uploads=500 seconds=1 per_s=700.0 threads=16 syncs=4
daemonlog always - worker_deaths=0
machine - - load_end=2.0 seconds=812
"""


def _report(raw):
    d = tempfile.mkdtemp(prefix="hfs-it-report-")
    try:
        with open(os.path.join(d, "raw.txt"), "w") as f:
            f.write(raw)
        p = _run(["python3", "-B", os.path.join(BENCH, "report.py"),
                  os.path.join(d, "raw.txt"), os.path.join(d, "out.md")])
        assert p.returncode == 0, p.stderr
        with open(os.path.join(d, "out.md")) as f:
            text = f.read()
        assert text in p.stdout
        return text
    finally:
        shutil.rmtree(d, True)


def _row(text, start):
    rows = [ln for ln in text.splitlines() if ln.startswith("| " + start)]
    assert rows, "no row %r in\n%s" % (start, text)
    return [c.strip() for c in rows[0].strip("|").split("|")]


def test_report_renders_columns_limits_and_verdicts():
    text = _report(SAMPLE)
    head = _row(text, "measurement")
    assert head == ["measurement", "storage.sync always", "nginx",
                    "always/nginx"], head
    # Medians with ranges, and the ratio of the medians (1500 vs 8000;
    # nginx's second run lost 10 of 2000 uploads: 0.5 %, left out).
    assert _row(text, "4 KiB PUT") == [
        "4 KiB PUT, 16 conns, fresh URL each: uploads/s",
        "1500 (1000-2000)", "8000", "0.19"]
    assert _row(text, "  same: syncs per upload")[1] == "4.00 (4.00-4.00)"
    assert _row(text, "256 MiB in 5 MiB chunks")[1:3] == ["1.50", "–"]
    assert _row(text, "loopback TCP")[1] == "2200 (2000-2400)"
    assert _row(text, "durable 4 KiB")[0].startswith(
        "durable 4 KiB uploads/s, 16 threads doing the daemon's 4 syncs")
    # One line per target, with the target, the ratio and both figures.
    assert ("- FAIL  [always] 4 KiB PUT uploads/s ≥ 0.5× nginx (moonshot "
            "1.0×): 0.19× (1500 vs nginx 8000)") in text
    assert ("- FAIL  [always] 4 KiB PUT uploads/s ≥ 80% of the durable "
            "small-file ceiling: 0.75× (1500 vs durable 2000)") in text
    assert "- PASS  [always] 1 GiB PUT within 10% of sequential" not in text
    assert re.search(r"- FAIL  \[always\] 1 GiB PUT within 10% of "
                     r"sequential write \+ fdatasync: 0\.50×", text), text
    assert "- FAIL  [always] 5 MiB-chunk resumable upload ≤ 1.10× one " \
           "plain PUT: 1.50" in text
    assert "- PASS  [always] idle keep-alive connection under 4 KiB (RSS): " \
           "0.59" in text
    # The journaled section: its own table and ceiling.
    j = text[text.index("## Journaled ext4"):]
    assert _row(j, "4 KiB PUT")[1:] == ["500", "5000", "0.10"]
    assert _row(j, "durable 4 KiB")[1] == "700"
    # Warnings name what was left out and why.
    warn = text[text.index("## Warnings"):]
    assert "put4k nginx run 2: 10 of 2000 uploads failed" in warn
    assert "big nginx run 1: answered 503, not 201" in warn
    assert "put4k always run 1: 2000 answered 201, only 1999 stored" in warn
    assert "Whole bench: 812 s" in text


def test_report_says_na_for_a_mode_the_binary_refuses():
    raw = SAMPLE + "sync off - status=unsupported\n"
    text = _report(raw)
    assert _row(text, "measurement") == [
        "measurement", "storage.sync always", "storage.sync off", "nginx",
        "always/nginx", "off/nginx"]
    assert _row(text, "4 KiB PUT")[2] == "n/a"
    assert _row(text, "4 KiB PUT")[5] == "n/a"
    assert ('- N/A   [off] 4 KiB PUT uploads/s ≥ 1.0× nginx: storage.sync = '
            '"off" not in this binary') in text


@hfs.timeout(240)
def test_run_sh_measures_a_few_rows_against_nginx():
    """The whole script on tiny sizes: servers up, rows measured, storage
    removed, a report without warnings."""
    tmp = tempfile.mkdtemp(prefix="hfs-it-bench-")
    out = os.path.join(tmp, "out")
    work = os.path.join(tmp, "work")
    os.mkdir(work)
    env = dict(os.environ, HFS_BIN=hfs.HFS_BIN, BENCH_OUT=out,
               BENCH_TMPDIR=work, BENCH_IDLE_CONNS="10",
               BUILD=os.path.relpath(TOOLS, hfs.REPO),
               BENCH_ONLY="limits,put4k,chunked,get4k", BENCH_RUNS="1",
               BENCH_DURATION="1", BENCH_PUT_COUNT="50", BENCH_BIG_MB="8",
               BENCH_CHUNKED_MB="6", BENCH_CHUNK_MB="2",
               BENCH_CEILING_COUNT="20")
    try:
        p = subprocess.run(["bash", os.path.join(BENCH, "run.sh")], env=env,
                           capture_output=True, text=True, timeout=230)
        assert p.returncode == 0, p.stdout + p.stderr
        assert os.listdir(work) == [], os.listdir(work)
        with open(os.path.join(out, "results.md")) as f:
            text = f.read()
        with open(os.path.join(out, "raw.txt")) as f:
            raw = f.read()
    finally:
        shutil.rmtree(tmp, True)
    assert _row(text, "4 KiB PUT")[1] not in ("-", "0.00"), text
    assert _row(text, "4 KiB GET")[1] not in ("-", "0.00"), text
    assert _row(text, "6 MiB in 2 MiB chunks")[1] != "-", text
    assert _row(text, "durable 4 KiB")[1] != "-", text
    assert "## Warnings" not in text, text
    assert re.search(r"^put4k nginx 1 uploads=50 ok=50 ", raw, re.M), raw
    assert re.search(r"^putstored always 1 stored=50$", raw, re.M), raw
