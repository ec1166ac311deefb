"""storage.file_mode and storage.dir_mode: one mode for every published file
and every directory the daemon makes under storage.dir, whichever way the
file came in (one-shot PUT, chunked-encoded PUT, large PUT taken as a
resumable session, X-Upload-Session-ID chunks, tus), and whatever the umask
the daemon was started with.

Operators serve GETs from storage.dir with a web server running as another
user: a mode that depends on the upload path breaks that at random.
"""

import os
import shutil
import stat
import subprocess
import tempfile

import hfs
from hfs import Daemon

MiB = 1 << 20
TUS = ("Tus-Resumable", "1.0.0")
OCTET = ("Content-Type", "application/offset+octet-stream")


def _start(umask=0o077, **overrides):
    """A daemon started under a strict umask, which must not matter."""
    old = os.umask(umask)
    try:
        return Daemon(**overrides)
    finally:
        os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def _one_shot(d, path):
    r = d.put(path, b"small file")
    assert r.status == 201, r


def _chunked_encoding(d, path):
    data = hfs.det_bytes(70000, seed=2)
    r = d.put_stream(d.put_target(path, len(data)),
                     hfs.chunked([data[:30000], data[30000:]]),
                     [("Transfer-Encoding", "chunked")])
    assert r.status == 201, r


def _large_put(d, path):
    data = hfs.det_bytes(600 * 1024, seed=3)     # > resumable_min_size
    r = d.put(path, data)
    assert r.status == 201, r


def _session_chunks(d, path):
    data = hfs.det_bytes(3 * MiB, seed=4)
    target = d.put_target(path, len(data))
    for a, b in ((0, 2 * MiB), (2 * MiB, len(data))):
        hs = [("Content-Range", "bytes %d-%d/%d" % (a, b - 1, len(data))),
              ("X-Upload-Session-ID", "modes-" + path.replace("/", "-"))]
        r = d.put_stream(target, data[a:b], hs)
        assert r.status == (201 if b == len(data) else 200), r


def _tus(d, path):
    data = hfs.det_bytes(300000, seed=5)
    r = d.request("POST", d.put_target(path, len(data)),
                  [TUS, ("Upload-Length", str(len(data)))])
    assert r.status == 201, r
    loc = r.header("Location")
    r = d.request("PATCH", loc, [TUS, ("Upload-Offset", "0"), OCTET],
                  body=data)
    assert r.status == 204, r
    hfs.wait_for(lambda: d.get(path).status == 200, 5, "tus file published")


PATHS = (("oneshot", _one_shot), ("te-chunked", _chunked_encoding),
         ("large", _large_put), ("session", _session_chunks), ("tus", _tus))


def _upload_all_and_check(d, file_mode, dir_mode):
    for name, upload in PATHS:
        rel = "mode-%s/sub/f.bin" % name
        upload(d, rel)
        top = os.path.join(d.storage, "mode-" + name)
        got = (_mode(os.path.join(top, "sub", "f.bin")),
               _mode(top), _mode(os.path.join(top, "sub")))
        assert got == (file_mode, dir_mode, dir_mode), \
            "%s: file %o, dirs %o %o; want %o, %o" % (
                name, got[0], got[1], got[2], file_mode, dir_mode)


def test_default_modes_on_every_path():
    with _start() as d:
        _upload_all_and_check(d, 0o644, 0o755)


def test_configured_modes_on_every_path():
    root = os.path.join(tempfile.mkdtemp(prefix="hfs-it-modes-"), "files")
    try:
        with _start(**{"storage.file_mode": "0640",
                       "storage.dir_mode": "0750",
                       "storage.dir": root}) as d:
            # storage.dir itself, made by the daemon at start.
            assert _mode(root) == 0o750, oct(_mode(root))
            _upload_all_and_check(d, 0o640, 0o750)
    finally:
        shutil.rmtree(os.path.dirname(root), True)


def test_modes_refused_by_check():
    """-t names the key of a mode the daemon could not work with."""
    for key, value, words in (
            ("file_mode", "0444", "owner needs at least 0600"),
            ("dir_mode", "0644", "owner needs at least 0700"),
            ("file_mode", "4755", "setuid"),
            ("file_mode", 644, "octal string")):
        d = Daemon(start=False, **{"storage." + key: value})
        try:
            p = subprocess.run([hfs.HFS_BIN, "-t", "-c", d.conf_path],
                                   capture_output=True, text=True)
            assert p.returncode == 1, p
            assert "storage.%s: " % key in p.stderr and words in p.stderr, \
                p.stderr
        finally:
            d.cleanup()
