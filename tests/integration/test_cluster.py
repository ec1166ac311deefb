"""The HA cluster (docs/cluster.md): 3 daemons sharing storage.dir and
storage.staging on one GlusterFS volume, behind HAProxy configured by
etc/haproxy.cfg.example, all on loopback (tests/integration/cluster.py).

Which node served a request is read from each node's own /metrics
(hfs_requests_total by method and status), never guessed from the hash.
"""

import os
import subprocess

import cluster
import hfs

MiB = 1 << 20
TUS = ("Tus-Resumable", "1.0.0")
OCTET = ("Content-Type", "application/offset+octet-stream")
UPLOAD = os.environ.get("HFS_UPLOAD_BIN") or os.path.join(
    os.path.dirname(hfs.HFS_BIN), "hmac-upload")


def _requests(node, method, status=None):
    labels = {"method": method}
    if status is not None:
        labels["status"] = str(status)
    return node.metrics().get("hfs_requests_total", **labels)


def _counts(c, method, status=None):
    return {n.name: _requests(n, method, status) for n in c.nodes}


def _delta(before, after):
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def _tus_create(front, path, size):
    r = front.request("POST", front.put_target(path, size),
                      [TUS, ("Upload-Length", str(size))])
    assert r.status == 201, r
    loc = r.header("Location")
    assert loc and "/.tus/" in loc, r
    return loc


def _tus_patch(front, loc, offset, body):
    return front.request("PATCH", loc, [TUS, ("Upload-Offset", str(offset)),
                                        OCTET], body=body)


@hfs.timeout(150)
def test_get_from_every_node_and_one_node_per_upload():
    """A file published by any node is served by every node; every request
    of one upload (chunks, tus PATCHes) reaches one node through HAProxy,
    and different uploads are spread over the nodes."""
    with cluster.Cluster(nodes=3) as c:
        files = {}
        # Published directly by each node...
        for n in c.nodes:
            data = hfs.det_bytes(300 * 1024 + n.port % 1000, seed=n.port)
            path = "direct/%s.bin" % n.name
            assert n.put(path, data).status == 201
            files[path] = data
        # ... and through HAProxy, in chunks by the project's C client:
        # one session per file, each on the node its signed path hashes to.
        used = set()
        put0 = _counts(c, "PUT")
        for i in range(6):
            size = 3 * MiB + i
            local, sha = hfs.make_file(size, seed=i)
            p = subprocess.run(
                [UPLOAD, "--chunk-size", "512K", "--parallel", "3",
                 local, c.put_url("chunked/f%d.bin" % i, size)],
                capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p
            with open(local, "rb") as f:
                files["chunked/f%d.bin" % i] = f.read()
            os.unlink(local)
            put1 = _counts(c, "PUT")
            d = _delta(put0, put1)
            assert len(d) == 1 and sum(d.values()) >= 6, (
                "chunks of one upload on several nodes: %r" % d)
            used |= set(d)
            put0 = put1
        # tus: the creation hashes by the signed path, the resource's
        # requests follow the Location to the node that created it.
        for i in range(4):
            size = 2 * MiB
            data = hfs.det_bytes(size, seed=50 + i)
            post0 = _counts(c, "POST", 201)
            patch0 = _counts(c, "PATCH")
            loc = _tus_create(c, "tus/t%d.bin" % i, size)
            creator = list(_delta(post0, _counts(c, "POST", 201)))
            assert len(creator) == 1, creator
            for off in range(0, size, 512 * 1024):
                r = _tus_patch(c, loc, off, data[off:off + 512 * 1024])
                assert r.status == 204, r
            d = _delta(patch0, _counts(c, "PATCH"))
            assert list(d) == creator, (
                "PATCHes went to %r, created on %r" % (d, creator))
            files["tus/t%d.bin" % i] = data
            used |= set(creator)
        # Every file from every node, and through HAProxy.
        for path, data in sorted(files.items()):
            for n in c.nodes + [c]:
                g = n.get(path)
                assert g.status == 200, (path, getattr(n, "name", "proxy"), g)
                assert g.body == data, (path, getattr(n, "name", "proxy"))
        assert len(used) >= 2, "every upload hashed to one node: %r" % used


@hfs.timeout(150)
def test_dead_node_routes_around():
    """With one node killed (-9, all its processes), HAProxy marks it down
    and every path -- old files and new uploads whose hash pointed at it --
    is served by the others; once restarted it serves again."""
    with cluster.Cluster(nodes=3) as c:
        paths = {"before/f%d.bin" % i: hfs.det_bytes(64 * 1024, seed=i)
                 for i in range(12)}
        for p, data in paths.items():
            assert c.put(p, data).status == 201
        victim = c.nodes[1]
        c.kill9(victim)
        assert c.haproxy.status() == {"node1": "UP", "node2": "DOWN",
                                      "node3": "UP"}
        for i in range(12):
            p = "after/f%d.bin" % i
            paths[p] = hfs.det_bytes(64 * 1024, seed=100 + i)
            r = c.put(p, paths[p])
            assert r.status == 201, (p, r)
        for p, data in paths.items():
            g = c.get(p)
            assert g.status == 200 and g.body == data, (p, g)
        c.restart(victim)
        for p, data in paths.items():
            g = victim.get(p)
            assert g.status == 200 and g.body == data, (p, g)
