"""The tools of `make bench` (docs/performance.md), on tiny sizes: they build,
measure what they say and print sane numbers, and the upload driver stores
byte-identical files in a real daemon.

No timing is asserted anywhere: speed is what `make bench` reports, never
what a test checks.
"""

import os
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
