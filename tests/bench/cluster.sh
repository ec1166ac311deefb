#!/usr/bin/env bash
# tests/bench/cluster.sh: the cluster row of `make bench` (BENCH_ONLY
# containing "cluster"), also runnable alone. 64 concurrent 8 MiB PUTs
# against one node on local disk, one node on a GlusterFS mount, and three
# nodes on that volume behind HAProxy (tests/bench/cluster.py), BENCH_RUNS
# times each. Needs root, /dev/fuse, glusterfs-server and haproxy (make
# deps); says "skipped" otherwise.
#
# All on ONE machine: the three nodes share its cores and its disk, so this
# measures what the cluster costs per upload (the HAProxy hop, Gluster's
# replica-2 writes through FUSE), not how it scales with machines.
#
# Results: build/bench/cluster.md (+ cluster-raw.txt). Informational only,
# exits 0 whatever the numbers.
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build/rel}
export HFS_BIN=${HFS_BIN:-$repo/$BUILD/hmac-file-server}
RUNS=${BENCH_RUNS:-3}
OUT=$repo/build/bench
mkdir -p "$OUT"
raw=$OUT/cluster-raw.txt

echo "cluster: 64 concurrent 8 MiB PUTs, 1 node vs 3 nodes behind HAProxy" \
     "(one machine: overhead, not scale)" >&2
python3 "$here/cluster.py" --runs "$RUNS" | tee "$raw" | sed 's/^BENCHRESULT /  /' >&2
python3 - "$raw" "$OUT/cluster.md" "$RUNS" <<'PY'
import statistics, sys
raw, out, runs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for ln in open(raw):
    f = ln.split()
    if len(f) < 4 or f[0] != "BENCHRESULT":
        continue
    kv = dict(x.split("=", 1) for x in f[3:])
    rows.setdefault(f[1], []).append((float(kv["mib_s"]), float(kv["seconds"]), kv["ok"]))
names = {"hfs-local": "1 node, local disk",
         "hfs-gluster": "1 node, GlusterFS mount",
         "cluster3": "3 nodes behind HAProxy, GlusterFS"}
with open(out, "w") as f:
    f.write("## Cluster: 64 concurrent 8 MiB PUTs (median of %s runs)\n\n" % runs)
    f.write("On one machine the nodes share its cores and disk: this is the "
            "cluster's overhead, not its scaling.\n\n")
    f.write("| setup | MiB/s | range | seconds | 201s |\n|---|---|---|---|---|\n")
    for k in ("hfs-local", "hfs-gluster", "cluster3"):
        if k not in rows:
            continue
        v = rows[k]
        mib = [x[0] for x in v]
        f.write("| %s | %.0f | %.0f-%.0f | %.1f | %s |\n" % (
            names[k], statistics.median(mib), min(mib), max(mib),
            statistics.median(x[1] for x in v), ",".join(x[2] for x in v)))
print(open(out).read())
PY
exit 0
