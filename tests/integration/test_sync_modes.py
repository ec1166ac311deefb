"""storage.sync: "always", "batch" and "off" each store every protocol's
uploads byte for byte; /metrics shows the syncs each mode makes (none for
"off", fewer than the uploads for "batch" under concurrent load); a bad
value is refused at start and by a reload with a message naming the key;
a reload switches modes under load without a failed request.

Durability against power cuts per mode is test_power_cut's business (it
runs "always" and "batch"); here the daemon runs on the ordinary disk.
"""

import os
import signal
import subprocess
import threading
import time

import hfs
from hfs import Daemon, curl
import test_ietf
import test_resume
import test_tus
import test_tus_concat
from test_reload import Load, _hup_and_wait, _metric, _write_conf

MiB = 1 << 20


def _syncs(d):
    m = d.metrics()
    return (m.get("hfs_syncs_total", kind="data") or 0,
            m.get("hfs_syncs_total", kind="dir") or 0)


def _check(d, path, data):
    g = d.get(path)
    assert g.status == 200 and g.body == data, (path, g)


def _one_shot_curl(d, tag):
    data = hfs.det_bytes(5000, seed=1)
    src = os.path.join(d.files, "one")
    with open(src, "wb") as f:
        f.write(data)
    path = "%s/one-shot.bin" % tag
    r = curl("-T", src, d.put_url(path, len(data)))
    assert r.rc == 0 and r.status == 201, r
    return path, data


def _resumable_put(d, tag):
    data = hfs.det_bytes(600 * 1024, seed=2)       # above resumable_min_size
    path = "%s/resumable.bin" % tag
    r = d.put(path, data)
    assert r.status == 201, r
    return path, data


def _chunked(d, tag):
    data = hfs.det_bytes(300000, seed=3)
    path = "%s/chunked.bin" % tag
    for a, b in test_resume.chunk_bounds(len(data), 100000):
        r = test_resume.put_chunk(d, path, data, a, b, "sid-" + tag)
        assert r.status in (200, 201), r
    assert r.status == 201, r
    return path, data


def _tus(d, tag):
    data = hfs.det_bytes(250000, seed=4)
    path = "%s/tus.bin" % tag
    r = test_tus.create(d, path, len(data))
    assert r.status == 201, r
    loc = r.header("Location")
    for a, b in ((0, 100000), (100000, len(data))):
        p = test_tus.patch(d, loc, a, data[a:b])
        assert p.status == 204, p
    return path, data


def _tus_concat(d, tag):
    data = hfs.det_bytes(200000, seed=5)
    path = "%s/concat.bin" % tag
    target = d.put_target(path, len(data))
    locs = test_tus_concat.upload_parts(d, target, data, (120000, 80000),
                                        filesize=len(data))
    r = test_tus_concat.final(d, target, locs)
    assert r.status == 201, r
    return path, data


def _ietf(d, tag):
    data = hfs.det_bytes(200000, seed=6)
    path = "%s/ietf.bin" % tag
    _, r = test_ietf.create(d, path, len(data))
    assert r.status == 201, r
    loc = r.header("Location")
    p = test_ietf.append(d, loc, 0, data, True)
    assert p.status in (200, 201), p
    return path, data


PROTOCOLS = (_one_shot_curl, _resumable_put, _chunked, _tus, _tus_concat,
             _ietf)


def _every_protocol(d, tag):
    done = [proto(d, "%s-%d" % (tag, i)) for i, proto in
            enumerate(PROTOCOLS)]
    for path, data in done:
        _check(d, path, data)
    return len(done)


def _concurrent_small_puts(d, tag, threads=8, each=12, flat=False):
    """Small one-shot PUTs from several clients at once: the load a group
    commit can gather. flat: all in one directory, else one per client."""
    failures, stored = [], {}
    lock = threading.Lock()

    def run(n):
        for i in range(each):
            path = ("%s/t%d-f%d.bin" if flat else "%s/t%d/f%d.bin") % (
                tag, n, i)
            data = hfs.det_bytes(4096, seed=n * 1000 + i)
            r = d.put(path, data)
            with lock:
                if r.status == 201:
                    stored[path] = data
                else:
                    failures.append((path, r))

    ts = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not failures, failures[:5]
    for path, data in stored.items():
        _check(d, path, data)
    return len(stored)


@hfs.timeout(60)
def test_always_stores_every_protocol_and_syncs():
    with Daemon(**{"storage.sync": "always"}) as d:
        _every_protocol(d, "always")
        data_syncs, dir_syncs = _syncs(d)
        # One-shot: data + directories; sessions: chunks and records.
        assert data_syncs >= len(PROTOCOLS) and dir_syncs >= len(PROTOCOLS), \
            (data_syncs, dir_syncs)
        assert d.metrics().get("hfs_sync_batches_total") == 0


@hfs.timeout(90)
def test_batch_stores_every_protocol_and_shares_syncs():
    # The longest window: a loaded machine still puts several uploads in
    # each group, so the counts below cannot depend on timing.
    with Daemon(**{"storage.sync": "batch", "storage.sync_window_ms": 100,
                   "server.workers": 1}) as d:
        _every_protocol(d, "batch")
        before = _syncs(d)
        batches = d.metrics().get("hfs_sync_batches_total")
        n = _concurrent_small_puts(d, "batch-load", threads=8, each=6,
                                   flat=True)
        data_syncs = _syncs(d)[0] - before[0]
        dir_syncs = _syncs(d)[1] - before[1]
        groups = d.metrics().get("hfs_sync_batches_total") - batches
        # Each file's data is synced on its own; the two directories of
        # the paths ("" and batch-load) once per group, not per upload
        # ("always" makes 2 * n).
        assert data_syncs == n, (data_syncs, n)
        assert 0 < groups < n, (groups, n)
        assert dir_syncs < n, (dir_syncs, n)
        assert data_syncs + dir_syncs < 2 * n


@hfs.timeout(90)
def test_batch_window_0_and_small_groups():
    """No wait at all (a group closes when the previous one is synced), and
    groups cut at sync_batch_max: every upload is still stored and answered
    once."""
    for extra in ({"storage.sync_window_ms": 0},
                  {"storage.sync_batch_max": 3}):
        with Daemon(**dict({"storage.sync": "batch"}, **extra)) as d:
            n = _concurrent_small_puts(d, "b", threads=6, each=5)
            assert n == 30
            m = d.metrics()
            assert 0 < m.get("hfs_sync_batches_total") <= n, m
            assert m.get("hfs_requests_total", method="PUT",
                         status="201") == n


@hfs.timeout(60)
def test_off_stores_every_protocol_without_a_sync():
    with Daemon(**{"storage.sync": "off"}) as d:
        _every_protocol(d, "off")
        _concurrent_small_puts(d, "off-load", threads=4, each=5)
        assert _syncs(d) == (0, 0), _syncs(d)
        # Nothing half-written is left in staging, nothing extra in storage.
        files = hfs.regular_files(d.storage)
        assert len(files) == len(PROTOCOLS) + 20, files


def _refused_at_start(extra_storage, want):
    d = Daemon(start=False, **extra_storage)
    try:
        r = subprocess.run([hfs.HFS_BIN, "-f", "-c", d.conf_path],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode != 0, r
        assert want in r.stderr, r.stderr
    finally:
        d.cleanup()


def test_bad_values_refused_at_start():
    _refused_at_start({"storage.sync": "sometimes"},
                      'storage.sync: unknown mode "sometimes" '
                      '(always, batch, off)')
    _refused_at_start({"storage.sync": "Off"}, "storage.sync: unknown mode")
    _refused_at_start({"storage.sync_window_ms": 1000},
                      "storage.sync_window_ms")
    _refused_at_start({"storage.sync_batch_max": 0}, "storage.sync_batch_max")


@hfs.timeout(60)
def test_bad_value_refused_by_reload_keeps_running_mode():
    with Daemon(**{"storage.sync": "off"}) as d:
        gen = _metric(d, "hfs_config_generation")
        d.cfg["storage"]["sync"] = "never"
        _write_conf(d)
        os.kill(d.pid, signal.SIGHUP)
        hfs.wait_for(lambda: _metric(d, "hfs_last_reload_success") == 0,
                     10, "a refused reload")
        assert _metric(d, "hfs_config_generation") == gen
        assert 'storage.sync: unknown mode "never"' in d.log(), d.log_tail()
        # Still "off": uploads are stored, and still without a sync.
        path, data = _one_shot_curl(d, "after-bad-reload")
        _check(d, path, data)
        assert _syncs(d) == (0, 0)


def _mode_settled(d, mode, before):
    """SIGHUP into `mode`, then wait until only the new generation is left,
    so what follows is counted against it alone."""
    d.cfg["storage"]["sync"] = mode
    _write_conf(d)
    old = set(d.worker_pids())
    gen = _hup_and_wait(d, before)
    d.wait_workers(len(old), exclude=old, timeout=15)
    hfs.wait_for(lambda: not (set(d.worker_pids()) & old), 15,
                 "the old generation to exit")
    return gen


@hfs.timeout(120)
def test_reload_switches_modes_under_load():
    with Daemon(**{"server.workers": 2, "server.shutdown_grace": 10,
                   "storage.sync": "always"}) as d:
        gen = _metric(d, "hfs_config_generation")
        with Load(d) as load:
            time.sleep(0.5)
            for mode in ("off", "batch", "always", "off", "batch"):
                d.cfg["storage"]["sync"] = mode
                _write_conf(d)
                gen = _hup_and_wait(d, gen)
                time.sleep(0.4)
            time.sleep(0.5)
        assert not load.failures, "%d failed request(s):\n%s\n%s" % (
            len(load.failures), "\n".join(load.failures[:20]),
            d.log_tail(40))
        assert load.counts["put"] >= 20, load.counts
        for path, data in load.uploaded.items():
            _check(d, path, data)
        # Each mode is the running one once its generation alone serves.
        gen = _mode_settled(d, "off", gen)
        before = _syncs(d)
        _every_protocol(d, "switched-off")
        assert _syncs(d) == before, (before, _syncs(d))
        gen = _mode_settled(d, "always", gen)
        _every_protocol(d, "switched-always")
        assert _syncs(d)[0] > before[0], (before, _syncs(d))
