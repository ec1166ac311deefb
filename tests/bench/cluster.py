"""The cluster bench row (run by tests/bench/cluster.sh): 64 concurrent
8 MiB PUTs (curl --parallel, each a new signed URL) against

  hfs-local    1 node, storage on the local file system (reference)
  hfs-gluster  1 node, storage on its GlusterFS mount (no HAProxy)
  cluster3     3 nodes on the same volume behind HAProxy

all on this one machine (tests/integration/cluster.py, the test harness:
the same volume options, mounts and etc/haproxy.cfg.example). On one
machine the three nodes share its cores and disk: this measures what the
cluster costs (HAProxy's hop, Gluster's replication and FUSE), not how it
scales.

Prints one line per run:
  BENCHRESULT <setup> <run> seconds=S mib_s=M ok=N
"""

import argparse
import collections
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.dont_write_bytecode = True

import cluster  # noqa: E402
import hfs      # noqa: E402

MiB = 1 << 20


def put_all(front, src, size, count, tag):
    """count concurrent PUTs of src through front (an hfs.Daemon-like
    object); (seconds, how many answered 201)."""
    args = ["curl", "-sS", "--parallel", "--parallel-immediate",
            "--parallel-max", str(count), "-w", "%{http_code}\n"]
    for i in range(count):
        args += ["-o", "/dev/null", "-T", src,
                 front.put_url("bench/%s/%d.bin" % (tag, i), size)]
    t0 = time.monotonic()
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    dt = time.monotonic() - t0
    return dt, collections.Counter(p.stdout.split())


def report(setup, run, dt, codes, size, count):
    ok = codes.get("201", 0)
    print("BENCHRESULT %s %d seconds=%.2f mib_s=%.1f ok=%d/%d codes=%s" % (
        setup, run, dt, ok * size / MiB / dt, ok, count,
        ",".join("%s:%d" % kv for kv in sorted(codes.items()))), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--size-mib", type=int, default=8)
    ap.add_argument("--setups", default="hfs-local,hfs-gluster,cluster3")
    a = ap.parse_args()
    size = a.size_mib * MiB
    try:
        cluster.require()
    except hfs.Skip as e:
        print("bench cluster: skipped (%s)" % e, file=sys.stderr)
        return 0
    src, _ = hfs.make_file(size, seed=7)
    with hfs.Daemon() as local, cluster.Cluster(nodes=3) as c:
        for run in range(1, a.runs + 1):
            # Alternate who goes first: the machine is shared and noisy.
            order = [("hfs-local", local), ("hfs-gluster", c.nodes[0]),
                     ("cluster3", c)]
            order = [o for o in order if o[0] in a.setups.split(",")]
            if run % 2 == 0:
                order.reverse()
            for setup, front in order:
                dt, codes = put_all(front, src, size, a.count,
                                 "%s-%d" % (setup, run))
                report(setup, run, dt, codes, size, a.count)
            # Each run writes count x size per setup: free it again.
            for d in (local.storage, c.storage):
                subprocess.run(["rm", "-rf", os.path.join(d, "bench")])
            if os.environ.get("BENCH_CLUSTER_DEBUG"):
                print(c.haproxy.admin("show stat"), file=sys.stderr)
                for n in c.nodes:
                    print(n.name, n.log_tail(8), file=sys.stderr)
    os.unlink(src)
    return 0


if __name__ == "__main__":
    sys.exit(main())
