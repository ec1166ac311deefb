"""Failing disks: storage calls fail under the daemon (powerfs fault rules,
tests/powerfs/powerfs.h), and a power cut then shows what was durable.

powerfs fails a sync the way Linux does after a write-back error: the dirty
pages are marked clean without being written, so a second fsync returns 0
though the bytes never reached the disk ("fsyncgate"). Asserted each time:
no acknowledgement for bytes whose sync failed (5xx; 507 for space), the
failure in the log and in hfs_storage_errors_total, nothing half-written
at a final name, and after a power cut the session holds exactly what
was acknowledged, from which the client finishes the upload."""

import os

import hfs
from powerfs import PowerRig
from test_power_cut import TUS, need_powerfs
from test_resume import chunk_bounds, chunk_head, covers, held_of

KiB = 1024


def errors(d, op):
    return d.metrics().get("hfs_storage_errors_total", op=op)


def send_chunk(d, path, data, a, b, sid):
    target, hs = chunk_head(d, path, data, a, b, sid)
    return d.put_stream(target, data[a:b], hs)


def held(d, path, total, sid):
    r = d.request("HEAD", d.put_target(path, total),
                  [("X-Upload-Session-ID", sid)])
    assert r.status == 200, r
    return held_of(r)


def cut(rig):
    mark = rig.log_mark()
    rig.power_cut(0.0, 7)
    log = rig.d.log()[mark:]
    assert "is corrupt" not in log and "did not match" not in log, log
    assert rig.staging_garbage() == [], rig.staging_garbage()


def test_chunk_data_sync_eio():
    """fdatasync of a chunk's bytes fails: 500, not held, counted and
    logged; the re-sent chunk is written again (not just synced again) and
    survives a power cut."""
    need_powerfs()
    with PowerRig() as rig:
        d = rig.d
        data = hfs.det_bytes(3 * 256 * KiB, 21)
        ch = chunk_bounds(len(data), 256 * KiB)
        path, sid = "f/data-eio.bin", "de-1"
        assert send_chunk(d, path, data, *ch[0], sid).status == 200
        before = errors(d, "commit")
        assert rig.fs.ctl("fault fdatasync EIO 0 1 /data") == "ok"
        r = send_chunk(d, path, data, *ch[1], sid)
        assert r.status == 500, r
        assert errors(d, "commit") == before + 1
        assert "fdatasync data: Input/output error" in d.log()
        h = held(d, path, len(data), sid)
        assert covers(h, *ch[0]) and not covers(h, *ch[1]), h
        cut(rig)
        h = held(d, path, len(data), sid)
        assert covers(h, *ch[0]) and not covers(h, *ch[1]), h
        # The client resumes: the re-sent chunk's bytes must reach the disk
        # by their own write, or the cut below loses them.
        assert send_chunk(d, path, data, *ch[1], sid).status == 200
        cut(rig)
        assert covers(held(d, path, len(data), sid), *ch[1])
        assert send_chunk(d, path, data, *ch[2], sid).status == 201
        cut(rig)
        g = d.get(path)
        assert g.status == 200 and g.body == data


def test_manifest_sync_eio_across_a_page():
    """The manifest's fdatasync fails for a record that ends its first
    4 KiB page. Linux has then marked the page clean with the record in it;
    appending the next records into the second page and syncing them would
    leave a hole where replay stops, and every later acknowledged chunk
    would be lost at the next power cut. The failed append is cut back, so
    the retry writes that page again."""
    need_powerfs()
    with PowerRig() as rig:
        d = rig.d
        n = 120
        data = hfs.det_bytes(n * KiB, 22)
        ch = chunk_bounds(len(data), KiB)
        path, sid = "f/manifest-eio.bin", "me-1"
        k = 0
        manifest = None
        while True:
            assert send_chunk(d, path, data, *ch[k], sid).status == 200
            k += 1
            if manifest is None:
                for dp, _ds, fs in os.walk(rig.staging):
                    if "manifest" in fs:
                        manifest = os.path.join(dp, "manifest")
            size = os.path.getsize(manifest)
            if size + 48 > 4096:        # the next record crosses the page
                break
            assert k < n - 10, "never reached the page boundary"
        assert rig.fs.ctl("fault fdatasync EIO 0 1 /manifest") == "ok"
        r = send_chunk(d, path, data, *ch[k], sid)
        assert r.status == 500, r
        assert not covers(held(d, path, len(data), sid), *ch[k])
        for j in range(k, k + 5):
            assert send_chunk(d, path, data, *ch[j], sid).status == 200
        want = held(d, path, len(data), sid)
        cut(rig)
        got = held(d, path, len(data), sid)
        assert covers(got, 0, ch[k + 4][1]), \
            "acknowledged %r, after the power cut %r" % (want, got)
        for j in range(k + 5, n):
            r = send_chunk(d, path, data, *ch[j], sid)
        assert r.status == 201, r
        cut(rig)
        assert d.get(path).body == data


def test_publish_fsync_eio_oneshot():
    """The one-shot file's fsync before its link fails: 500, nothing at the
    name, counted and logged; the retried PUT is stored and survives a
    power cut."""
    need_powerfs()
    with PowerRig() as rig:
        d = rig.d
        data = hfs.det_bytes(9000, 23)
        before = errors(d, "publish")
        assert rig.fs.ctl("fault fsyncfull EIO 0 1 /staging/up-") == "ok"
        r = d.put("g/one.bin", data)
        assert r.status == 500, r
        assert d.get("g/one.bin").status == 404
        assert errors(d, "publish") == before + 1
        assert "fsync of upload data: Input/output error" in d.log()
        assert d.put("g/one.bin", data).status == 201
        cut(rig)
        assert d.get("g/one.bin").body == data


def test_publish_dirsync_eio_takes_the_name_back():
    """fsync of the target directory after the link fails: the name, which
    a power cut could take away, is removed again and the answer is 500."""
    need_powerfs()
    with PowerRig() as rig:
        d = rig.d
        data = hfs.det_bytes(7000, 24)
        assert d.put("h/first.bin", b"x").status == 201
        assert rig.fs.ctl("fault fsyncdir EIO 0 1 /storage/h") == "ok"
        r = d.put("h/second.bin", data)
        assert r.status == 500, r
        assert d.get("h/second.bin").status == 404
        assert not os.path.exists(os.path.join(rig.storage, "h",
                                               "second.bin"))
        assert d.put("h/second.bin", data).status == 201
        cut(rig)
        assert d.get("h/second.bin").body == data


def test_link_fails_session_kept():
    """linkat fails as the last chunk completes the file: 500, the session
    keeps every chunk (held, durable across a power cut), and the next
    status request publishes it."""
    need_powerfs()
    with PowerRig() as rig:
        d = rig.d
        data = hfs.det_bytes(2 * 256 * KiB, 25)
        ch = chunk_bounds(len(data), 256 * KiB)
        path, sid = "l/linked.bin", "lk-1"
        assert send_chunk(d, path, data, *ch[0], sid).status == 200
        assert rig.fs.ctl("fault link EIO 0 1 /staging/") == "ok"
        before = errors(d, "publish")
        r = send_chunk(d, path, data, *ch[1], sid)
        assert r.status == 500, r
        assert errors(d, "publish") == before + 1
        assert "linkat: Input/output error" in d.log()
        assert d.get(path).status == 404
        cut(rig)
        r = d.request("HEAD", d.put_target(path, len(data)),
                      [("X-Upload-Session-ID", sid)])
        assert r.status == 200 and r.header("Upload-Offset") == \
            str(len(data)), r
        assert d.get(path).body == data


def test_enospc_is_507():
    """pwrite fails with ENOSPC: 507 for a one-shot PUT, a chunk and a tus
    PATCH; nothing is published, earlier acknowledged bytes stay held."""
    need_powerfs()
    with PowerRig() as rig:
        d = rig.d
        before = errors(d, "write")
        assert rig.fs.ctl("fault write ENOSPC 0 1 /staging/up-") == "ok"
        r = d.put("s/full.bin", hfs.det_bytes(5000, 26))
        assert r.status == 507, r
        assert d.get("s/full.bin").status == 404

        data = hfs.det_bytes(2 * 256 * KiB, 27)
        ch = chunk_bounds(len(data), 256 * KiB)
        assert send_chunk(d, "s/c.bin", data, *ch[0], "sp-1").status == 200
        assert rig.fs.ctl("fault write ENOSPC 0 1 /data") == "ok"
        r = send_chunk(d, "s/c.bin", data, *ch[1], "sp-1")
        assert r.status == 507, r
        assert held(d, "s/c.bin", len(data), "sp-1") == [ch[0]]

        tdata = hfs.det_bytes(300 * KiB, 28)
        r = d.request("POST", d.put_target("s/t.bin", len(tdata)),
                      TUS + [("Upload-Length", str(len(tdata))),
                             ("Content-Length", "0")])
        assert r.status == 201, r
        url = r.header("Location")
        assert rig.fs.ctl("fault write ENOSPC 0 1 /data") == "ok"
        r = d.request("PATCH", url, TUS + [
            ("Upload-Offset", "0"),
            ("Content-Type", "application/offset+octet-stream")], tdata)
        assert r.status == 507, r
        assert errors(d, "write") >= before + 3
        cut(rig)
        assert held(d, "s/c.bin", len(data), "sp-1") == [ch[0]]
        r = d.request("HEAD", url, TUS)
        assert r.status == 200 and r.header("Upload-Offset") == "0", r
        assert d.get("s/t.bin").status == 404


def test_short_writes_are_completed():
    """pwrite returns short counts: the daemon writes the rest, and the
    file is whole after a power cut."""
    need_powerfs()
    with PowerRig() as rig:
        d = rig.d
        assert rig.fs.ctl("fault write short 0 20 /staging/") == "ok"
        small = hfs.det_bytes(100 * KiB, 29)
        big = hfs.det_bytes(700 * KiB, 30)
        assert d.put("w/small.bin", small).status == 201
        assert d.put("w/big.bin", big).status == 201
        assert "faults=" in rig.fs.ctl("stats")
        assert not rig.fs.ctl("stats").endswith("faults=0")
        cut(rig)
        assert d.get("w/small.bin").body == small
        assert d.get("w/big.bin").body == big
