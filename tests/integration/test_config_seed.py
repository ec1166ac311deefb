"""The configuration the seed documents: its keys (uploads.chunksize,
resumableuploadsenabled, chunkeduploadsenabled, maxretries) and its unit
forms ("5MB", "24h", "300s", "2s"), with what each key does to the daemon.

An operator's file written from the seed's example section
(fixtures/seed-example.conf) must pass `-t`; keys of the Go server this
daemon does not implement must still fail with FILE:LINE: key."""

import os
import shutil
import subprocess
import tempfile
import time

import hfs
from hfs import Daemon, build_request

MiB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))
SEED = os.path.join(HERE, "fixtures", "seed-example.conf")
TUS = ("Tus-Resumable", "1.0.0")


def check(text_or_path, cwd):
    """hmac-file-server -t -c FILE from cwd: (exit status, output)."""
    path = text_or_path
    if not os.path.exists(text_or_path):
        path = os.path.join(cwd, "t.conf")
        with open(path, "w") as f:
            f.write(text_or_path)
    p = subprocess.run([hfs.HFS_BIN, "-t", "-c", path], cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def chunk(d, path, data, a, b, sid="s-1", extra=()):
    hs = [("Content-Range", "bytes %d-%d/%d" % (a, b - 1, len(data)))]
    if sid:
        hs.append(("X-Upload-Session-ID", sid))
    return d.put_stream(d.put_target(path, len(data)), data[a:b],
                        hs + list(extra))


def sessions_in(staging):
    """Session directories (staging/<fan>/<key>/manifest) under staging."""
    return [p for p in hfs.regular_files(staging)
            if p.endswith("/manifest")]


# ---------------------------------------------------------------- -t

def test_seed_example_passes_check():
    with open(SEED) as f:
        text = f.read()
    # The fixture keeps the seed's own spellings; a cleaned-up copy would
    # prove nothing.
    for form in ('chunksize = "5MB"', 'sessiontimeout = "24h"',
                 'readtimeout = "300s"', 'reconnectdelay = "2s"',
                 "resumableuploadsenabled = true",
                 "chunkeduploadsenabled = true", "maxretries = 5"):
        assert form in text, form
    tmp = tempfile.mkdtemp(prefix="hfs-it-seed-")
    try:
        rc, out = check(SEED, tmp)
        assert rc == 0, out
        assert "configuration ok" in out, out
    finally:
        shutil.rmtree(tmp, True)


def test_seed_keys_we_do_not_support_fail_clearly():
    tmp = tempfile.mkdtemp(prefix="hfs-it-seed-")
    sec = 'security: { secrets = [ "k" ]; };\n'
    cases = [
        ('uploads: {\n    allowedextensions = [ ".txt" ];\n};\n',
         ":3: uploads.allowedextensions: unknown key"),
        ('uploads: {\n    chunk_size = "10MB";\n};\n',
         ":3: uploads.chunk_size: unknown key"),
        ('uploads: {\n    chunksize = "5XB";\n};\n',
         ':3: uploads.chunksize: bad size "5XB"'),
        ('uploads: {\n    chunksize = "5 MB";\n};\n',
         ':3: uploads.chunksize: bad size "5 MB"'),
        ('timeouts: {\n    readtimeout = "-1s";\n};\n',
         ':3: timeouts.readtimeout: bad duration "-1s"'),
        ('uploads: {\n    chunksize = "99999999999999999999MB";\n};\n',
         ":3: uploads.chunksize: size"),
        ('uploads: {\n    maxretries = 11;\n};\n',
         ":3: uploads.maxretries: must be at most 10"),
        ('[server]\nlistenport = "8080"\n', "t.conf:2: syntax error"),  # TOML
    ]
    try:
        for body, want in cases:
            rc, out = check(sec + body, tmp)
            assert rc != 0, (body, out)
            assert want in out, "%r: want %r in %r" % (body, want, out)
    finally:
        shutil.rmtree(tmp, True)


def test_seed_values_run():
    """A daemon with the seed's values serves a plain PUT and a chunked
    upload whose chunks are the configured "5MB"."""
    with Daemon(**{"uploads.chunksize": "5MB",
                   "uploads.sessiontimeout": "24h",
                   "uploads.maxretries": 5,
                   "uploads.resumableuploadsenabled": True,
                   "uploads.chunkeduploadsenabled": True,
                   "timeouts.readtimeout": "300s",
                   "timeouts.uploadtimeout": "3600s",
                   "network.reconnectdelay": "2s",
                   "network.keepaliveinterval": "30s"}) as d:
        r = d.put("seed/plain.bin", b"x" * 1000)
        assert r.status == 201, r
        data = hfs.det_bytes(5 * MiB + 123, seed=3)
        r = chunk(d, "seed/chunked.bin", data, 0, 5 * MiB)
        assert r.status == 200, r
        r = chunk(d, "seed/chunked.bin", data, 5 * MiB, len(data))
        assert r.status == 201, r
        assert d.get("seed/chunked.bin").body == data


# ---------------------------------------------------------------- switches

def test_chunked_switched_off():
    with Daemon(**{"uploads.chunkeduploadsenabled": False}) as d:
        data = hfs.det_bytes(300000, seed=4)
        r = chunk(d, "off/c.bin", data, 0, 100000)
        assert r.status == 501, r
        assert "X-Upload-Session-ID" in r.text and "disabled" in r.text, r
        # Any header of the protocol is refused, not taken for a whole
        # file.
        r = d.put_stream(d.put_target("off/n.bin", 1000), b"y" * 1000,
                         [("X-Chunk-Number", "0"), ("X-Total-Chunks", "3")])
        assert r.status == 501, r
        assert hfs.regular_files(d.storage) == []
        assert sessions_in(d.staging) == []
        # Status with a session ID answers for the file only: none here.
        r = d.request("HEAD", d.put_target("off/c.bin", len(data)),
                      [("X-Upload-Session-ID", "s-1")])
        assert r.status == 404, r
        # Plain PUT still works, and so does tus (the other switch).
        r = d.put("off/c.bin", data)
        assert r.status == 201, r
        assert d.get("off/c.bin").body == data
        r = d.request("OPTIONS", "/")
        assert r.header("Tus-Resumable") == "1.0.0", r


def test_resumable_switched_off():
    with Daemon(**{"uploads.resumableuploadsenabled": False}) as d:
        # Discovery no longer offers tus.
        r = d.request("OPTIONS", d.put_target("off/t.bin", 10))
        assert r.status == 204, r
        assert not [k for k in r.hdict() if k.lower().startswith("tus-")], r
        r = d.request("POST", d.put_target("off/t.bin", 10),
                      [TUS, ("Upload-Length", "10")])
        assert r.status == 501, r
        assert "tus" in r.text and "disabled" in r.text, r
        r = d.request("PATCH", "/.tus/" + "0" * 32,
                      [TUS, ("Upload-Offset", "0"),
                       ("Content-Type", "application/offset+octet-stream")],
                      body=b"abc", length=True)
        assert r.status == 501, r
        # A Content-Range resume of a plain PUT is refused...
        data = hfs.det_bytes(2 * MiB, seed=5)
        r = chunk(d, "off/p.bin", data, 0, MiB, sid=None)
        assert r.status == 501, r
        assert "Content-Range" in r.text, r
        # ...and a plain PUT above resumable_min_size is stored in one
        # piece: a one-shot staging file while it arrives, no session, and
        # nothing to resume after a cut.
        target = d.put_target("off/p.bin", len(data))
        c = d.conn()
        c.send(build_request("PUT", target,
                             [("Content-Length", str(len(data)))], b""))
        c.send(data[:MiB])
        hfs.wait_for(lambda: any(
            os.path.basename(p).startswith("up-")
            and os.path.getsize(os.path.join(d.staging, p)) > 0
            for p in hfs.regular_files(d.staging)), what="one-shot file")
        assert sessions_in(d.staging) == []
        c.close()
        hfs.wait_for(lambda: d.metrics().get("hfs_uploads_in_progress") == 0,
                     what="cut upload seen")
        r = d.request("HEAD", target)
        assert r.status == 404, r
        assert r.header("Upload-Offset") is None, r
        r = d.put("off/p.bin", data)
        assert r.status == 201, r
        assert d.get("off/p.bin").body == data
        # The chunked protocol is the other switch: still on.
        big = hfs.det_bytes(300000, seed=6)
        assert chunk(d, "off/c.bin", big, 0, 150000).status == 200
        r = chunk(d, "off/c.bin", big, 150000, len(big))
        assert r.status == 201, r
        assert d.get("off/c.bin").body == big


def test_switches_follow_reload():
    """Both switches are read again on SIGHUP, like every upload setting."""
    with Daemon() as d:
        data = hfs.det_bytes(1000, seed=7)
        assert chunk(d, "rl/a.bin", data, 0, 500).status == 200
        d.cfg["uploads"]["chunkeduploadsenabled"] = False
        with open(d.conf_path, "w") as f:
            f.write(hfs.config_text(d.cfg))
        gen = d.metrics().get("hfs_config_generation")
        os.kill(d.pid, 1)
        hfs.wait_for(lambda: d.metrics().get("hfs_config_generation") != gen,
                     what="reload")
        hfs.wait_for(lambda: chunk(d, "rl/b.bin", data, 0, 500).status
                     == 501, what="new workers refuse chunks")


# ---------------------------------------------------------------- maxretries

class Tmpfs:
    """A small tmpfs holding storage.dir and storage.staging (root only):
    a full disk that can be made on demand."""

    def __init__(self, size):
        if os.geteuid() != 0:
            raise hfs.Skip("mounting a tmpfs needs root")
        self.path = tempfile.mkdtemp(prefix="hfs-it-tmpfs-")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%d,mode=0755" % size, "tmpfs", self.path],
                           stderr=subprocess.PIPE, universal_newlines=True)
        if p.returncode != 0:
            os.rmdir(self.path)
            raise hfs.Skip("mount -t tmpfs: " + p.stderr.strip())
        self.storage = os.path.join(self.path, "storage")
        self.staging = os.path.join(self.path, "staging")
        os.makedirs(self.storage)
        os.makedirs(self.staging)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        subprocess.run(["umount", "-l", self.path])
        os.rmdir(self.path)
        return False


def fill_with_expired_session(d, path, size):
    """A plain PUT of `size` bytes (its staging file preallocated) cut
    after 64 KiB, which makes it a session (deferred create: the cut is
    what turns it into one), then left idle past uploads.sessiontimeout
    (1 s): space held by a session that is due, not yet swept."""
    data = hfs.det_bytes(size, seed=9)
    # The janitor's first round runs a second after start, its next one
    # 30 s later: begin well after the first, so none sweeps this session.
    time.sleep(max(0.0, d.started + 3.0 - time.monotonic()))
    c = d.conn()
    c.send(build_request("PUT", d.put_target(path, size),
                         [("Content-Length", str(size))], b""))
    c.send(data[:64 * 1024])
    hfs.wait_for(lambda: d.metrics().get("hfs_uploads_in_progress") == 1,
                 what="upload under way")
    c.close()
    hfs.wait_for(lambda: sessions_in(d.staging), what="session created")
    hfs.wait_for(lambda: d.metrics().get("hfs_uploads_in_progress") == 0,
                 what="cut upload seen")
    time.sleep(2.5)


def enospc_daemon(fs, retries):
    # The janitor sweeps a second after start, then every 30 s: these tests
    # are over well before its second round, so only a retry can free the
    # space.
    d = Daemon(**{"storage.dir": fs.storage, "storage.staging": fs.staging,
                     "storage.min_free": 0, "server.workers": 1,
                     "uploads.sessiontimeout": "1s",
                     "uploads.maxretries": retries})
    d.started = time.monotonic()
    return d


@hfs.timeout(60)
def test_enospc_retried_after_reclaiming_expired_sessions():
    with Tmpfs(8 * MiB) as fs, enospc_daemon(fs, 3) as d:
        fill_with_expired_session(d, "full/old.bin", 5 * MiB)
        data = hfs.det_bytes(5 * MiB, seed=10)
        r = d.put("full/new.bin", data)          # needs the session's space
        assert r.status == 201, r
        assert d.get("full/new.bin").body == data
        assert "removed 1 expired upload session(s)" in d.log(), \
            d.log_tail()
        assert sessions_in(d.staging) == []


@hfs.timeout(60)
def test_enospc_retried_for_one_shot_files():
    """A PUT below resumable_min_size (a one-shot staging file) takes the
    same way, as does a session that could not be created."""
    with Tmpfs(8 * MiB) as fs, enospc_daemon(fs, 3) as d:
        fill_with_expired_session(d, "full/old.bin", 5 * MiB)
        with open(os.path.join(fs.storage, "ballast"), "wb") as f:
            f.write(b"\0" * (2900 * 1024))
        small = hfs.det_bytes(200 * 1024, seed=11)
        r = d.put("full/small.bin", small)
        assert r.status == 201, r
        assert d.get("full/small.bin").body == small
        assert "removed 1 expired upload session(s)" in d.log(), \
            d.log_tail()


@hfs.timeout(60)
def test_enospc_not_retried_with_maxretries_0():
    with Tmpfs(8 * MiB) as fs, enospc_daemon(fs, 0) as d:
        fill_with_expired_session(d, "full/old.bin", 5 * MiB)
        r = d.put("full/new.bin", hfs.det_bytes(5 * MiB, seed=10))
        assert r.status == 507, r
        assert "free space" in r.text, r
        assert hfs.regular_files(d.storage) == []
        assert "expired upload session" not in d.log(), d.log_tail()


@hfs.timeout(60)
def test_enospc_without_anything_to_reclaim_is_507():
    """Retries only while reclaiming frees something: a disk full of live
    data answers 507 at once, whatever maxretries says."""
    with Tmpfs(4 * MiB) as fs, enospc_daemon(fs, 10) as d:
        with open(os.path.join(fs.storage, "ballast"), "wb") as f:
            f.write(b"\0" * (3 * MiB))
        t0 = time.monotonic()
        r = d.put("full/new.bin", hfs.det_bytes(2 * MiB, seed=10))
        assert r.status == 507, r
        assert time.monotonic() - t0 < 5, "507 took too long"


@hfs.timeout(60)
def test_enospc_retried_for_tus_creation():
    """tus creation preallocates the upload's data like a PUT session: a
    disk held by a session that is due is reclaimed for it too. The bytes
    go with the creation request (creation-with-upload): with a 1 s
    sessiontimeout, a separate PATCH could find the new upload expired."""
    for retries, want in ((3, 201), (0, 507)):
        with Tmpfs(8 * MiB) as fs, enospc_daemon(fs, retries) as d:
            fill_with_expired_session(d, "full/old.bin", 5 * MiB)
            data = hfs.det_bytes(5 * MiB, seed=13)
            r = d.request("POST", d.put_target("full/t.bin", 5 * MiB),
                          [TUS, ("Upload-Length", str(5 * MiB)),
                           ("Content-Type",
                            "application/offset+octet-stream")],
                          body=data, length=True)
            assert r.status == want, (retries, r)
            if want == 201:
                assert r.header("Upload-Offset") == str(5 * MiB), r
                assert d.get("full/t.bin").body == data
