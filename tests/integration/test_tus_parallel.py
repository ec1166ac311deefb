"""The stock tus-js-client from npm with parallelUploads (tus
concatenation, docs/protocol.md): a 64 MiB file in 4 partial uploads,
aborted at random points and resumed from tus-js-client's URL storage;
then kill -9 of workers and of the whole daemon in the middle of it.
The protocol's refusals are in test_tus_concat.py."""

import json
import os
import random
import signal
import subprocess
import time

import hfs
from hfs import Daemon
from test_tus import (CLIENT_DIR, NODE_DIR, MiB, _get_sha256, _node_client,
                      _run_client, sign_v3)
from test_torture import hard_restart
from test_tus_concat import assert_partials_freed

SIZE = 64 * MiB


def _upload(d, path, src, i, v1=True):
    """A parallel upload's options: the file's signed URL as endpoint;
    with a v1 URL (which binds the size) the partials carry filesize."""
    up = {"file": src, "source": "stream", "parallelUploads": 4,
          "storage": os.path.join(d.files, "urls-%d.json" % i),
          "metadata": {"filename": os.path.basename(path)}}
    if v1:
        up["endpoint"] = d.put_url(path, SIZE)
        up["metadataForPartialUploads"] = {"filesize": str(SIZE)}
    else:
        exp = int(time.time()) + 600
        up["endpoint"] = d.url(path, "v3=%s&expires=%d"
                               % (sign_v3(path, exp), exp))
    return up


@hfs.timeout(120)
def test_parallel_uploads_small_and_odd_sizes():
    """Sizes that do not split evenly, and a file smaller than the number
    of parts (tus-js-client then sends empty partials; from a Buffer: its
    file reader cannot slice a stream to nothing)."""
    node = _node_client()
    with Daemon() as d:
        jobs = []
        for i, size in enumerate([3, 1000003, 5 * MiB + 1]):
            src, digest = d.make_file(size)
            path = "u-pars/%d.bin" % i
            jobs.append((path, digest, {
                "endpoint": d.put_url(path, size), "file": src,
                "source": "buffer" if size < 4 else "stream",
                "parallelUploads": 4, "metadata": {"filename": "%d.bin" % i},
                "metadataForPartialUploads": {"filesize": str(size)}}))
        res = _run_client(node, d, {"mode": "upload",
                                    "uploads": [j[2] for j in jobs]})
        for (path, digest, _), r in zip(jobs, res):
            assert r["ok"], (path, r)
            posts = [q for q in r["requests"] if q[0] == "POST"]
            assert len(posts) == 5 and posts[-1][2] == 201, r["requests"]
            assert _get_sha256(d, path) == digest, path


@hfs.timeout(300)
def test_parallel_uploads_abort_and_resume_10_rounds():
    node = _node_client()
    seed = int(os.environ.get("HFS_SEED", "0")) or random.randrange(1 << 30)
    rnd = random.Random(seed)
    print("seed", seed)
    with Daemon() as d:
        src, digest = d.make_file(SIZE)
        for i in range(10):
            path = "u-par/round %d.bin" % i
            up = _upload(d, path, src, i, v1=i % 3 != 2)
            cut = rnd.randrange(4 * MiB, 60 * MiB)
            up["bytesPerSecond"] = 24 * MiB      # per request, 4 at once
            r = _run_client(node, d, {"mode": "abort", "upload": up,
                                      "abortAfter": cut})[0]
            assert r["error"] == "aborted", (i, cut, r)
            assert d.get(path).status == 404, (i, cut)
            up["bytesPerSecond"] = None
            r = _run_client(node, d, {"mode": "resume", "upload": up})[0]
            assert r["ok"], (i, cut, r)
            reqs = r["requests"]
            # Every partial found again by HEAD, only the final created.
            assert [q[0] for q in reqs[:4]] == ["HEAD"] * 4, reqs
            assert [q[0] for q in reqs].count("POST") == 1, reqs
            assert reqs[-1][0] == "POST" and reqs[-1][2] == 201, reqs
            assert _get_sha256(d, path) == digest, (i, cut)
        assert_partials_freed(d)


def _start_client(node, d, job):
    jpath = os.path.join(d.files, "job-%d.json" % time.monotonic_ns())
    with open(jpath, "w") as f:
        json.dump(job, f)
    env = dict({k: v for k, v in os.environ.items()
                if "proxy" not in k.lower()},
               NODE_PATH=os.path.join(NODE_DIR, "node_modules"))
    return subprocess.Popen([node, os.path.join(CLIENT_DIR, "client.js"),
                             jpath], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def _received(d):
    return d.metrics().get("hfs_bytes_received_total")


@hfs.timeout(300)
def test_parallel_uploads_survive_kill_9():
    """kill -9 of a worker, then of the master and every worker, while the
    partials stream (and, in the last round, about when the final is
    assembled); the client resumes from its URL storage and the published
    file is byte-identical."""
    node = _node_client()
    with Daemon(check_exit=False) as d:
        src, digest = d.make_file(SIZE)
        for i, at in enumerate([12 * MiB, 40 * MiB, SIZE - MiB // 2]):
            path = "u-park/round %d.bin" % i
            up = _upload(d, path, src, i, v1=i != 1)
            up["bytesPerSecond"] = 12 * MiB
            up["retryDelays"] = [0]
            rx0 = _received(d)
            p = _start_client(node, d, {"mode": "upload", "uploads": [up]})
            hfs.wait_for(lambda: _received(d) - rx0 >= at or
                         p.poll() is not None, timeout=60,
                         what="%d bytes received" % at)
            workers = d.worker_pids()
            os.kill(workers[0], signal.SIGKILL)
            time.sleep(0.3)
            hard_restart(d)
            out, _ = p.communicate(timeout=60)
            first = out.decode().strip().splitlines()
            done = bool(first) and '"ok":true' in first[-1]
            if not done:
                up["bytesPerSecond"] = None
                up["retryDelays"] = [0, 200, 500]
                r = _run_client(node, d, {"mode": "resume", "upload": up,
                                          "latest": True})[0]
                assert r["ok"], (i, r)
                # The partials were found again: only the final is created.
                posts = [q for q in r["requests"] if q[0] == "POST"]
                assert len(posts) == 1, r["requests"]
            assert _get_sha256(d, path) == digest, i
