"""Docs that must match the code: every metric the daemon exports is in the
manual page and the operations guide; every file `make install` lays down is
in the operations guide's install table.

These read the real daemon's /metrics and a real `make install` into a
temporary DESTDIR, so a new metric or installed file without its docs fails
here rather than in an operator's monitoring.
"""

import os
import re
import shutil
import tempfile
import time

import hfs
import test_ops

REPO = hfs.REPO


def _read(rel):
    with open(os.path.join(REPO, rel), encoding="utf-8") as f:
        return f.read()


def _section(text, heading):
    """The body of one '## heading' section of a Markdown file."""
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def _exported_metrics():
    with hfs.Daemon(**{"server.workers": 1}) as d:
        r = d.request("GET", "/metrics")
        assert r.status == 200, r
        return sorted(set(re.findall(r"^# TYPE (\w+) ", r.text, re.M)))


def test_every_metric_is_documented():
    names = _exported_metrics()
    assert len(names) >= 10, names
    man = _read("docs/hmac-file-server.8")
    ops = _section(_read("docs/operations.md"), "## 11. Monitoring")
    missing = [(n, where) for n in names
               for where, text in (("hmac-file-server.8", man),
                                   ("operations.md §11", ops))
               if not re.search(r"\b%s\b" % re.escape(n), text)]
    assert not missing, "metrics not documented: %r" % missing


def test_install_table_lists_every_installed_file():
    dest = tempfile.mkdtemp(prefix="hfs-docs-inst-")
    try:
        test_ops._make_install(dest)
        table = _section(_read("docs/operations.md"), "## 1. Install")
        missing = []
        for root, _dirs, files in os.walk(dest):
            for f in files:
                path = "/" + os.path.relpath(os.path.join(root, f), dest)
                shown = path.replace("/usr/local/", "$PREFIX/")
                # The table may name a second man page by its folder only.
                short = "/".join(path.split("/")[-2:])
                if shown not in table and not (
                        "/man/" in path and "`%s`" % short in table):
                    missing.append(shown)
        assert not missing, "installed but not in the table: %r" % missing
    finally:
        shutil.rmtree(dest, True)


def _cut_put(d, path, data, sent):
    """Send a signed plain PUT's head and `sent` body bytes, then close."""
    target = d.put_target(path, len(data))
    c = d.conn()
    c.send(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
           % (target.encode(), len(data)) + data[:sent])
    c.close()
    return target


def test_resuming_a_cut_plain_put_is_as_documented():
    """Large plain PUTs resume from HEAD's Upload-Offset; small ones are
    stored in one piece, so HEAD answers 404 — and every place that tells
    users about resuming says where the threshold is."""
    for rel in ("README.md", "docs/protocol.md", "docs/architecture.md"):
        text = _read(rel)
        assert "resumable_min_size" in text and "404" in text, rel
    with hfs.Daemon(**{"server.workers": 1}) as d:
        small = os.urandom(100 * 1024)
        target = _cut_put(d, "u/small.bin", small, 60 * 1024)
        time.sleep(0.3)
        assert d.request("HEAD", target).status == 404
        assert d.put("u/small.bin", small).status == 201
        big = os.urandom(1024 * 1024)
        target = _cut_put(d, "u/big.bin", big, 600 * 1024)
        hfs.wait_for(lambda: d.request("HEAD", target).header(
            "Upload-Offset") == str(600 * 1024), 10, "Upload-Offset")
        assert d.put("u/big.bin", big).status == 201
        assert d.get("u/big.bin").body == big
