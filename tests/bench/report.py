#!/usr/bin/env python3
"""report.py RAW OUT.md: run.sh's raw lines -> tables, targets, warnings.

RAW lines are "TEST SERVER RUN key=value ...": TEST prefixed "j." when
measured on the journaled image; SERVER a storage.sync mode of the daemon
("always", "off", ...), "nginx", "hfslog" (the default daemon with its
access log on) or "-" (a physical limit). Each figure is the median of the
runs with the range (min-max) beside it; targets are judged on medians. A
run with errors (over 0.1 % of its requests) or a wrong status is left out
of the figures and named under Warnings: a server that answers 503 fast
must not look fast. Prints the report and writes it to OUT.md.
"""

import statistics
import sys

MODES = ("always", "batch", "off")      # the daemon's columns, in order
REF = "nginx"
LIMIT = "-"
IDLE_LIMIT_KIB = 4.0
ERR_SHARE = 0.001

# key: (label, higher is better). {big}, {many}, ... come from the data.
FIGURES = {
    "put4k.ups": ("4 KiB PUT, 16 conns, fresh URL each: uploads/s", True),
    "put4k.p50": ("  same: p50 latency, ms", False),
    "put4k.p99": ("  same: p99 latency, ms", False),
    "put4k.cpu": ("  same: server CPU per upload, µs", False),
    "put4k.syncs": ("  same: syncs per upload (hfs_syncs_total)", False),
    "many.mbs": ("{many} concurrent {many_size} PUTs: MB/s", True),
    "many.cpu": ("  same: server CPU per GB, ms", False),
    "big.mbs": ("one {big} PUT: MB/s", True),
    "big.cpu": ("  same: server CPU, ms", False),
    "chunked.ratio": ("{chunked} in {chunk} chunks: time ÷ one plain PUT",
                      False),
    "chunked.mbs": ("  chunked: MB/s", True),
    "chunkplain.mbs": ("  one plain PUT of it: MB/s", True),
    "get4k.rps": ("4 KiB GET @64: requests/s", True),
    "get4k.p50": ("  same: p50 latency, ms", False),
    "get4k.p99": ("  same: p99 latency, ms", False),
    "get4k.cpu": ("  same: server CPU per request, µs", False),
    "get1m.mbs": ("1 MiB GET @64: MB/s", True),
    "get1m.p99": ("  same: p99 latency, ms", False),
    "get1m.cpu": ("  same: server CPU per GB sent, ms", False),
    "idle.rss": ("idle keep-alive connection: KiB each (RSS)", False),
    "idle.pss": ("  same: KiB each (PSS)", False),
    "idle.base": ("whole server at rest: PSS MiB", False),
}
LIMITS = {
    "tcp.mbs": "loopback TCP, one stream: MB/s",
    "seqwrite.mbs": "sequential write of {big} + fdatasync (dd): MB/s",
    "durable.ups": "durable 4 KiB uploads/s, {threads} threads doing the "
                   "daemon's {syncs} syncs each (durable_ceiling)",
}

# (column, key, how, factor, against, wording). how: "ref" compares with
# nginx's median, "limit" with a physical limit's, "abs" with the factor.
TARGETS = (
    ("always", "put4k.ups", "ref", 0.5, None,
     "4 KiB PUT uploads/s ≥ 0.5× nginx (moonshot 1.0×)"),
    ("always", "put4k.ups", "limit", 0.8, "durable.ups",
     "4 KiB PUT uploads/s ≥ 80% of the durable small-file ceiling"),
    ("always", "big.mbs", "limit", 0.9, "seqwrite.mbs",
     "{big} PUT within 10% of sequential write + fdatasync"),
    ("always", "many.mbs", "limit", 0.9, "seqwrite.mbs",
     "{many}×{many_size} PUTs within 10% of sequential write + fdatasync"),
    ("always", "chunked.ratio", "abs", 1.1, None,
     "{chunk}-chunk resumable upload ≤ 1.10× one plain PUT"),
    ("always", "put4k.cpu", "ref", 1.0, None,
     "CPU per 4 KiB upload ≤ nginx's"),
    ("always", "get4k.p99", "ref", 1.0, None, "4 KiB GET p99 ≤ nginx's"),
    ("off", "big.mbs", "ref", 1.5, None, "{big} PUT ≥ 1.5× nginx"),
    ("off", "many.mbs", "ref", 1.5, None,
     "{many}×{many_size} PUTs ≥ 1.5× nginx"),
    ("off", "put4k.ups", "ref", 1.0, None, "4 KiB PUT uploads/s ≥ 1.0× nginx"),
    ("off", "put4k.cpu", "ref", 1.0, None, "CPU per 4 KiB upload ≤ nginx's"),
    ("off", "get4k.rps", "ref", 1.0, None, "4 KiB GET requests/s ≥ 1.0× nginx"),
    ("off", "get4k.p99", "ref", 1.0, None, "4 KiB GET p99 ≤ nginx's"),
    ("off", "get1m.mbs", "ref", 1.0, None, "1 MiB GET MB/s ≥ 1.0× nginx"),
    ("always", "idle.rss", "abs", IDLE_LIMIT_KIB, None,
     "idle keep-alive connection under 4 KiB (RSS)"),
)

def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            kv = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
            rows.append((parts[0], parts[1], parts[2], kv))
    return rows


def fnum(x):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return "%.0f" % x
    if abs(x) >= 10:
        return "%.1f" % x
    return "%.2f" % x


def size_name(nbytes):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return "%d %s" % (nbytes >> shift, unit)
    return "%d B" % nbytes


class Figures:
    """Per-run values: vals[(section, key)][server] = [v, ...]."""

    def __init__(self):
        self.vals = {}

    def add(self, section, key, server, v):
        self.vals.setdefault((section, key), {}).setdefault(
            server, []).append(v)

    def runs(self, section, key, server):
        return self.vals.get((section, key), {}).get(server, [])

    def med(self, section, key, server):
        v = self.runs(section, key, server)
        return statistics.median(v) if v else None

    def cell(self, section, key, server):
        v = self.runs(section, key, server)
        if not v:
            return "-"
        if len(v) == 1:
            return fnum(v[0])
        return "%s (%s-%s)" % (fnum(statistics.median(v)), fnum(min(v)),
                               fnum(max(v)))

    def keys(self, section):
        return {k for s, k in self.vals if s == section}


class Result:
    def __init__(self):
        self.F = Figures()
        self.machine = {}
        self.warnings = []
        self.unsupported = []       # sync modes the binary refused
        self.servers = set()
        self.sizes = {}


def errors_too_many(r, where, n, errs):
    total = sum(errs.values())
    if total == 0:
        return False
    bad = total > n * ERR_SHARE
    r.warnings.append("%s: %d errors in %d requests (%s)%s" % (
        where, total, n, " ".join("%s=%d" % kv for kv in errs.items() if kv[1]),
        ": run left out of the figures" if bad else ""))
    return bad


def add_wrk(r, sec, test, srv, kv, where):
    n = int(kv["requests"])
    errs = {k: int(v) for k, v in kv.items() if k.startswith("err_")}
    if errors_too_many(r, where, n, errs):
        return
    secs = int(kv["duration_us"]) / 1e6
    cpu = int(kv.get("server_cpu_ms", -1))
    nbytes = int(kv["bytes"])
    add = lambda k, v: r.F.add(sec, "%s.%s" % (test, k), srv, v)
    add("p50", int(kv["p50_us"]) / 1000)
    add("p99", int(kv["p99_us"]) / 1000)
    if test == "get4k":
        add("rps", n / secs)
        if cpu >= 0 and n:
            add("cpu", cpu * 1000 / n)
    else:
        add("mbs", nbytes / secs / 1e6)
        if cpu >= 0 and nbytes:
            add("cpu", cpu / (nbytes / 1e9))


def driver_ok(r, where, kv):
    """True if the driver's run counts; warns about any failed upload."""
    up, ok = int(kv["uploads"]), int(kv["ok"])
    if ok == up and up > 0:
        return True
    statuses = " ".join("%s=%s" % (k[7:], v) for k, v in kv.items()
                        if k.startswith("status_") and k != "status_201")
    r.warnings.append("%s: %d of %d uploads failed (%s%sI/O errors %s)%s" % (
        where, up - ok, up, statuses, statuses and ", ",
        kv.get("io_errors", "?"),
        ": run left out of the figures" if up - ok > up * ERR_SHARE else ""))
    return up > 0 and up - ok <= up * ERR_SHARE


def add_driver(r, sec, test, srv, kv, where):
    if not driver_ok(r, where, kv):
        return
    ok, secs = int(kv["ok"]), float(kv["seconds"])
    nbytes = int(kv["bytes"]) * ok // int(kv["uploads"])
    cpu = int(kv.get("server_cpu_ms", -1))
    add = lambda k, v: r.F.add(sec, "%s.%s" % (test, k), srv, v)
    if test == "put4k":
        add("ups", ok / secs)
        add("p50", int(kv["p50_us"]) / 1000)
        add("p99", int(kv["p99_us"]) / 1000)
        if cpu >= 0:
            add("cpu", cpu * 1000 / ok)
        if "syncs" in kv:
            add("syncs", int(kv["syncs"]) / ok)
        return
    add("mbs", nbytes / secs / 1e6)
    if test == "many":
        r.sizes["many"] = str(ok)
        r.sizes["many_size"] = size_name(nbytes // ok)
        if cpu >= 0:
            add("cpu", cpu / (nbytes / 1e9))
    else:
        r.sizes["chunked"] = size_name(nbytes)


def add_chunk_ratios(r, rows):
    secs = {}
    for test, srv, run, kv in rows:
        sec, t = split_test(test)
        if t in ("chunked", "chunkplain") and int(kv.get("ok", 0)) == 1:
            secs.setdefault((sec, srv, run), {})[t] = float(kv["seconds"])
            if "chunk" in kv:
                r.sizes["chunk"] = size_name(int(kv["chunk"]))
    for (sec, srv, run), d in sorted(secs.items()):
        if "chunked" in d and d.get("chunkplain"):
            r.F.add(sec, "chunked.ratio", srv, d["chunked"] / d["chunkplain"])


def add_big(r, sec, srv, kv, where):
    if kv["status"] != "201":
        r.warnings.append("%s: answered %s, not 201" % (where, kv["status"]))
        return
    secs, nbytes = float(kv["seconds"]), int(float(kv["bytes"]))
    r.sizes["big"] = size_name(nbytes)
    r.F.add(sec, "big.mbs", srv, nbytes / secs / 1e6)
    if int(kv.get("server_cpu_ms", -1)) >= 0:
        r.F.add(sec, "big.cpu", srv, int(kv["server_cpu_ms"]))


def add_limit(r, sec, test, kv):
    if test == "tcp":
        r.F.add(sec, "tcp.mbs", LIMIT, float(kv["mbs"]))
    elif test == "seqwrite":
        nbytes = int(kv["bytes"])
        r.sizes.setdefault("big", size_name(nbytes))
        r.F.add(sec, "seqwrite.mbs", LIMIT, nbytes / float(kv["seconds"]) / 1e6)
    else:
        r.sizes["threads"] = kv.get("threads", "16")
        r.sizes["syncs"] = kv.get("syncs", "?")
        r.F.add(sec, "durable.ups", LIMIT, float(kv["per_s"]))


def add_idle(r, srv, kv, where):
    if int(kv["closed"]):
        r.warnings.append("%s: server closed %s idle connections"
                          % (where, kv["closed"]))
        return
    r.F.add("", "idle.rss", srv, int(kv["rss_per_conn_b"]) / 1024)
    r.F.add("", "idle.pss", srv, int(kv["pss_per_conn_b"]) / 1024)
    r.F.add("", "idle.base", srv, int(kv["pss_before_kib"]) / 1024)


def split_test(test):
    return ("j.", test[2:]) if test.startswith("j.") else ("", test)


def check_stored(r, rows):
    """put4k: every answered upload must be a file. (The driver counts an
    answer once read, a file is on disk a moment before.)"""
    ok = {(t, s, run): int(kv["ok"]) for t, s, run, kv in rows
          if split_test(t)[1] == "put4k" and "ok" in kv}
    for t, s, run, kv in rows:
        sec, test = split_test(t)
        want = ok.get((sec + "put4k", s, run))
        if test == "putstored" and want is not None \
                and int(kv["stored"]) < want:
            r.warnings.append("%sput4k %s run %s: %d answered 201, only %s "
                              "stored" % (sec, s, run, want, kv["stored"]))


def check_access_log(r, rows, kv, run):
    want = {(t, r2): int(k2["requests"] if "requests" in k2 else 0)
            for t, s2, r2, k2 in rows if s2 == "hfslog"}.get(
                (kv["test"], run), 0)
    if int(kv["lines"]) < want:
        r.warnings.append("hfslog run %s %s: %s requests answered, only %s "
                          "access log lines" % (run, kv["test"], want,
                                                kv["lines"]))


def build(rows):
    r = Result()
    for test, srv, run, kv in rows:
        sec, t = split_test(test)
        where = "%s %s run %s" % (test, srv, run)
        if srv not in ("-",) and t not in ("machine", "sync", "daemonlog",
                                           "journal"):
            r.servers.add(srv)
        if t == "machine":
            r.machine.update(kv)
        elif t == "sync" and kv.get("status") == "unsupported":
            r.unsupported.append(srv)
        elif t == "journal":
            r.warnings.append("BENCH_JOURNAL=1 skipped: %s"
                              % kv.get("skipped", "?"))
        elif t == "daemonlog":
            if int(kv.get("worker_deaths", 0)):
                r.warnings.append(
                    "%s lost %s worker(s) during the run (crash; see its "
                    "log): its figures are suspect" % (srv,
                                                       kv["worker_deaths"]))
        elif t in ("get4k", "get1m"):
            add_wrk(r, sec, t, srv, kv, where)
        elif t in ("put4k", "many", "chunked", "chunkplain"):
            add_driver(r, sec, t, srv, kv, where)
        elif t == "big":
            add_big(r, sec, srv, kv, where)
        elif t in ("tcp", "seqwrite", "durable"):
            add_limit(r, sec, t, kv)
        elif t == "idle":
            add_idle(r, srv, kv, where)
        elif t == "accesslog":
            check_access_log(r, rows, kv, run)
    add_chunk_ratios(r, rows)
    check_stored(r, rows)
    return r


# ---- rendering ---------------------------------------------------------------

def label(r, key, table=FIGURES):
    return fill(r, table[key][0] if table is FIGURES else table[key])


def fill(r, text):
    sizes = {"big": "1 GiB", "many": "64", "many_size": "8 MiB",
             "chunked": "256 MiB", "chunk": "5 MiB", "threads": "16",
             "syncs": "?"}
    sizes.update(r.sizes)
    return text.format(**sizes)


def columns(r):
    cols = [m for m in MODES if m in r.servers or m in r.unsupported]
    return cols + [REF]


def cell(r, sec, key, srv):
    if srv in r.unsupported:
        return "n/a"
    if key == "chunked.ratio" and srv == REF:
        return "–"
    return r.F.cell(sec, key, srv)


def ratio(r, sec, key, srv):
    a, b = r.F.med(sec, key, srv), r.F.med(sec, key, REF)
    if a is None or not b:
        return "-"
    return "%.2f" % (a / b)


def render_table(r, sec):
    cols = columns(r)
    mine = [c for c in cols if c != REF]
    out = ["| measurement | %s | %s |" % (
        " | ".join(("storage.sync %s" % c) if c in MODES else c
                   for c in cols),
        " | ".join("%s/nginx" % c for c in mine)),
        "|---" * (1 + len(cols) + len(mine)) + "|"]
    for key in FIGURES:
        if not any(r.F.runs(sec, key, c) for c in cols):
            continue
        out.append("| %s | %s | %s |" % (
            label(r, key), " | ".join(cell(r, sec, key, c) for c in cols),
            " | ".join(ratio(r, sec, key, c) if c not in r.unsupported
                       else "n/a" for c in mine)))
    return out


def render_limits(r, sec):
    out = []
    for key in LIMITS:
        if r.F.runs(sec, key, LIMIT):
            out.append("| %s | %s |" % (label(r, key, LIMITS),
                                        r.F.cell(sec, key, LIMIT)))
    if not out:
        return []
    return ["| physical limit (same run) | median (min-max) |",
            "|---|---|"] + out


def judge(r, sec, target):
    col, key, how, factor, against, words = target
    what = "[%s] %s" % (col, fill(r, words))
    if col in r.unsupported:
        return "- N/A   %s: storage.sync = \"%s\" not in this binary" % (
            what, col)
    a = r.F.med(sec, key, col)
    if how == "ref":
        b, bname = r.F.med(sec, key, REF), "nginx"
    elif how == "limit":
        b, bname = r.F.med(sec, against, LIMIT), against.split(".")[0]
    else:
        b, bname = 1.0, None
    if a is None or b is None or b == 0:
        return None
    hb = FIGURES[key][1]
    ratio_v = a / b
    ok = ratio_v >= factor if hb else ratio_v <= factor
    if how == "abs":
        detail = "%s" % fnum(a)
    else:
        detail = "%.2f× (%s vs %s %s)" % (ratio_v, fnum(a), bname, fnum(b))
    return "- %s  %s: %s" % ("PASS" if ok else "FAIL", what, detail)


def render_targets(r, sec):
    lines = [judge(r, sec, t) for t in TARGETS]
    lines = [ln for ln in lines if ln]
    if not lines:
        return []
    return ["Targets (issue 12; medians, same run):", ""] + lines


def render_access_log(r):
    keys = [k for k in FIGURES if r.F.runs("", k, "hfslog")]
    if not keys:
        return []
    out = ["## Access log: on vs off", "",
           "The default daemon twice in the same run, alternating, the "
           "second (hfslog) with logging.access_log writing every request "
           "to a file.", "",
           "| measurement | access log on | off | on/off |",
           "|---|---|---|---|"]
    for k in keys:
        a, b = r.F.med("", k, "hfslog"), r.F.med("", k, "always")
        out.append("| %s | %s | %s | %s |" % (
            label(r, k), r.F.cell("", k, "hfslog"), r.F.cell("", k, "always"),
            "%.2f" % (a / b) if a is not None and b else "-"))
    return out + [""]


def header(r):
    m = r.machine
    out = ["# make bench: hmac-file-server vs nginx", ""]
    out.append(
        "%s CPU(s) %s, kernel %s, %s storage (journal: %s, discard: %s); "
        "nginx %s, wrk %s; daemon %s (repo at %s), %s. Median of %s runs "
        "(min-max), servers alternating; %s s per wrk run. Whole bench: "
        "%s s%s." % (
            m.get("cpus", "?"), m.get("cpu", "?").replace("_", " "),
            m.get("kernel", "?"), m.get("fs", "?"), m.get("journal", "?"),
            m.get("discard", "?"), m.get("nginx", "?"), m.get("wrk", "?"),
            m.get("bin", "?"), m.get("rev", "?"), m.get("date", "?"),
            m.get("runs", "?"), m.get("duration", "?"),
            m.get("seconds", "?"),
            " (%s s before the journaled phase)" % m["plain_seconds"]
            if "plain_seconds" in m else ""))
    out += ["", "Load average %s at the start, %s at the end; a load above "
            "the CPU count means other work shared the machine and "
            "throughput is unreliable: compare the CPU-per-request rows, "
            "which move less." % (m.get("load_start", "?"),
                                  m.get("load_end", "?"))]
    for mode in r.unsupported:
        out += ["", "storage.sync = \"%s\": this binary refuses the key or "
                "value (its `-t` config check), so its column is n/a." % mode]
    if m.get("journal") == "no":
        out += ["", "The storage is ext4 WITHOUT a journal: fsync costs a "
                "fraction of what it costs on a journaled filesystem; see "
                "the journaled table (BENCH_JOURNAL=1) for a server's disk."]
    return out


FOOTNOTE = (
    "storage.sync \"always\" answers 201 only once the upload is on disk "
    "(fsync of the data and of every directory entry); \"off\" and nginx's "
    "WebDAV PUT answer from the page cache. MB = 10^6 bytes. Idle "
    "connection memory is the server's own (user space).")


def render(r):
    out = header(r) + ["", "## Plain filesystem", ""]
    out += render_table(r, "") + [""]
    lim = render_limits(r, "")
    out += lim + ([""] if lim else [])
    out += [FOOTNOTE, ""]
    t = render_targets(r, "")
    out += t + ([""] if t else [])
    if r.F.keys("j."):
        out += ["## Journaled ext4 (loop-mounted image, BENCH_JOURNAL=1)", ""]
        out += render_table(r, "j.") + [""]
        lim = render_limits(r, "j.")
        out += lim + ([""] if lim else [])
        t = render_targets(r, "j.")
        out += t + ([""] if t else [])
    out += render_access_log(r)
    if r.warnings:
        out += ["## Warnings", ""] + ["- " + w for w in r.warnings]
    return "\n".join(out).rstrip("\n") + "\n"


def main():
    if len(sys.argv) != 3:
        print("usage: report.py RAW OUT.md", file=sys.stderr)
        return 2
    text = render(build(parse(sys.argv[1])))
    with open(sys.argv[2], "w") as f:
        f.write(text)
    sys.stdout.write("\n" + text)
    print("\n(written to %s)" % sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
