#!/usr/bin/env python3
"""report.py RAW OUT.md: run.sh's raw lines -> table, targets, warnings.

RAW lines are "TEST SERVER RUN key=value ...". Each figure is reported as
the median of the runs with the range (min-max) beside it; a target is
judged on medians, and a comparison whose ranges overlap is marked as
within noise. A run with errors (over 0.1 % of its requests) or a wrong
status is left out of the figures and named under Warnings: a server that
answers 503 fast must not look fast. Prints the report, writes OUT.md.
"""

import statistics
import sys

SERVERS = ("hfs", "nginx")
# The same daemon with logging.access_log on ("hfslog") against "hfs".
LOG_SERVERS = ("hfslog", "hfs")

# key: (label, higher is better), in table order. (*) = not the same work.
FIGURES = {
    "get4k.rps": ("GET 4 KiB: requests/s", True),
    "get4k.p50": ("GET 4 KiB: p50 latency, ms", False),
    "get4k.p99": ("GET 4 KiB: p99 latency, ms", False),
    "get4k.cpu": ("GET 4 KiB: server CPU per request, us", False),
    "get1m.mbs": ("GET 1 MiB: MB/s", True),
    "get1m.p99": ("GET 1 MiB: p99 latency, ms", False),
    "get1m.cpu": ("GET 1 MiB: server CPU per GB sent, ms", False),
    "put.ups": ("PUT 64 KiB: uploads/s (*)", True),
    "put.mbs": ("PUT 64 KiB: MB/s (*)", True),
    "put.p50": ("PUT 64 KiB: p50 latency, ms (*)", False),
    "put.p99": ("PUT 64 KiB: p99 latency, ms (*)", False),
    "put.cpu": ("PUT 64 KiB: server CPU per upload, us (*)", False),
    "big.s": ("PUT 1 GiB: seconds (*)", False),
    "big.mbs": ("PUT 1 GiB: MB/s (*)", True),
    "big.cpu": ("PUT 1 GiB: server CPU, ms (*)", False),
    "idle.rss": ("Idle keep-alive conn: KiB each (RSS)", False),
    "idle.pss": ("Idle keep-alive conn: KiB each (PSS)", False),
    "idle.base": ("Whole server at rest: PSS MiB", False),
}

TARGETS = (
    ("get4k.rps", "faster than nginx: GET 4 KiB requests/s"),
    ("get1m.mbs", "faster than nginx: GET 1 MiB MB/s"),
    ("put.ups", "faster than nginx: PUT 64 KiB uploads/s (*)"),
    ("big.mbs", "faster than nginx: PUT 1 GiB MB/s (*)"),
)
IDLE_LIMIT_KIB = 4.0


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


class Figure:
    """One measured quantity, per server a list of per-run values."""

    def __init__(self, key, servers=SERVERS):
        self.label, self.higher_better = FIGURES[key]
        self.servers = servers
        self.vals = {s: [] for s in servers}

    def med(self, s):
        v = self.vals[s]
        return statistics.median(v) if v else None

    def cell(self, s):
        v = self.vals[s]
        if not v:
            return "-"
        if len(v) == 1:
            return fnum(v[0])
        return "%s (%s-%s)" % (fnum(statistics.median(v)), fnum(min(v)),
                               fnum(max(v)))

    def overlap(self):
        a, b = (self.vals[s] for s in self.servers)
        return bool(a and b) and min(a) <= max(b) and min(b) <= max(a)

    def ratio(self):
        a, b = (self.med(s) for s in self.servers)
        if a is None or b is None or b == 0:
            return "-"
        return "%.2f" % (a / b)


def wrk_errors(where, kv, n, warnings):
    """True if the run is too broken to count."""
    errs = {k: int(v) for k, v in kv.items() if k.startswith("err_")}
    total = sum(errs.values())
    if total == 0:
        return False
    bad = total * 1000 > n
    warnings.append("%s: %d errors in %d requests (%s)%s" % (
        where, total, n,
        " ".join("%s=%d" % (k, v) for k, v in errs.items() if v),
        ": run left out of the figures" if bad else ""))
    return bad


def add_wrk(test, kv, put_body, add):
    secs = int(kv["duration_us"]) / 1e6
    n = int(kv["requests"])
    nbytes = int(kv["bytes"])
    p50 = int(kv["p50_us"]) / 1000
    p99 = int(kv["p99_us"]) / 1000
    cpu = int(kv.get("server_cpu_ms", -1))
    if test == "get4k":
        add("get4k.rps", n / secs)
        add("get4k.p50", p50)
        add("get4k.p99", p99)
        if cpu >= 0 and n:
            add("get4k.cpu", cpu * 1000 / n)
    elif test == "get1m":
        add("get1m.mbs", nbytes / secs / 1e6)
        add("get1m.p99", p99)
        if cpu >= 0 and nbytes:
            add("get1m.cpu", cpu / (nbytes / 1e9))
    else:
        add("put.ups", n / secs)
        add("put.mbs", n * put_body / secs / 1e6)
        add("put.p50", p50)
        add("put.p99", p99)
        if cpu >= 0 and n:
            add("put.cpu", cpu * 1000 / n)


def build(rows):
    F = {}
    L = {}          # access log on vs off
    warnings = []
    machine = {}
    put_body = 65536
    for test, srv, run, kv in rows:
        if test == "putstored":
            put_body = int(kv.get("body", put_body))
    for test, srv, run, kv in rows:
        where = "%s %s run %s" % (test, srv, run)

        def add(key, value, srv=srv):
            if srv == "hfslog":
                L.setdefault(key, Figure(key, LOG_SERVERS)).vals[srv].append(
                    value)
            else:
                F.setdefault(key, Figure(key)).vals[srv].append(value)

        if test == "machine":
            machine.update(kv)
        elif test == "daemonlog":
            if int(kv.get("worker_deaths", 0)):
                warnings.append("the daemon lost %s worker(s) during the run "
                                "(crash; see its log): its figures are suspect"
                                % kv["worker_deaths"])
        elif test in ("get4k", "get1m", "put"):
            if wrk_errors(where, kv, int(kv["requests"]), warnings):
                continue
            if int(kv.get("wrapped", 0)):
                warnings.append("%s: ran out of fresh URLs %s time(s): raise "
                                "PUT_URLS" % (where, kv["wrapped"]))
            add_wrk(test, kv, put_body, add)
        elif test == "big":
            if kv["status"] != "201":
                warnings.append("%s: answered %s, not 201" % (where,
                                                              kv["status"]))
                continue
            secs = float(kv["seconds"])
            add("big.s", secs)
            add("big.mbs", int(kv["bytes"]) / secs / 1e6)
            if int(kv.get("server_cpu_ms", -1)) >= 0:
                add("big.cpu", int(kv["server_cpu_ms"]))
        elif test == "accesslog":
            want = {r2: int(kv2["requests"]) for t2, s2, r2, kv2 in rows
                    if t2 == kv["test"] and s2 == srv}.get(run, 0)
            if int(kv["lines"]) < want:
                warnings.append("%s %s: %s requests answered, only %s access "
                                "log lines" % (where, kv["test"], want,
                                               kv["lines"]))
        elif test == "idle":
            if int(kv["closed"]):
                warnings.append("%s: server closed %s idle connections"
                                % (where, kv["closed"]))
                continue
            add("idle.rss", int(kv["rss_per_conn_b"]) / 1024)
            add("idle.pss", int(kv["pss_per_conn_b"]) / 1024)
            add("idle.base", int(kv["pss_before_kib"]) / 1024)
    # wrk counts a response once it is read, a file is on disk a moment
    # before: stored may exceed the count by the requests still in flight.
    answered = {(s, r): int(kv["requests"])
                for t, s, r, kv in rows if t == "put"}
    for t, s, r, kv in rows:
        if t == "putstored" and int(kv["stored"]) < answered.get((s, r), 0):
            warnings.append("put %s run %s: %s answered, only %s stored"
                            % (s, r, answered[(s, r)], kv["stored"]))
    # BENCH_BIG_MB may shrink the big upload: name the size measured.
    big = {int(kv["bytes"]) for t, s, r, kv in rows if t == "big"}
    if len(big) == 1 and big != {1 << 30}:
        size = "%d MiB" % (big.pop() >> 20)
        for k in F:
            if k.startswith("big."):
                F[k].label = F[k].label.replace("1 GiB", size)
        machine["big"] = size
    for k, f in L.items():
        if k in F:
            f.vals["hfs"] = list(F[k].vals["hfs"])
    ordered = {k: F[k] for k in FIGURES if k in F}
    logged = {k: L[k] for k in FIGURES if k in L}
    return ordered, logged, machine, warnings


def header(m):
    out = ["# make bench: hmac-file-server vs nginx", ""]
    out.append(
        "%s CPU(s) %s, kernel %s, %s storage (journal: %s); nginx %s, wrk %s; "
        "daemon %s (repo at %s), %s. Median of %s runs (min-max), %s s per "
        "wrk run." % (
            m.get("cpus", "?"), m.get("cpu", "?").replace("_", " "),
            m.get("kernel", "?"), m.get("fs", "?"), m.get("journal", "?"),
            m.get("nginx", "?"), m.get("wrk", "?"), m.get("bin", "?"),
            m.get("rev", "?"), m.get("date", "?"), m.get("runs", "?"),
            m.get("duration", "?")))
    out.append("")
    out.append("Load average %s at the start, %s at the end (%s s); a load "
               "above the CPU count means other work shared the machine and "
               "throughput is unreliable: compare the CPU-per-request rows, "
               "which move less." % (m.get("load_start", "?"),
                                     m.get("load_end", "?"),
                                     m.get("seconds", "?")))
    if m.get("journal") == "no":
        out.append("")
        out.append("The storage is ext4 WITHOUT a journal: fsync costs a "
                   "fraction of what it costs on a journaled filesystem, so "
                   "the daemon's fsync-per-upload is cheap here; expect its "
                   "PUT figures to fall further behind nginx on a server.")
    return out


def targets(F, machine):
    out = ["## Targets", ""]
    for key, label in TARGETS:
        label = label.replace("1 GiB", machine.get("big", "1 GiB"))
        f = F.get(key)
        if f is None or f.med("hfs") is None or f.med("nginx") is None:
            out.append("- NOT MEASURED  %s" % label)
            continue
        a, b = f.med("hfs"), f.med("nginx")
        ok = a >= b if f.higher_better else a <= b
        out.append("- %s  %s: %s vs %s%s" % (
            "PASS" if ok else "FAIL", label, fnum(a), fnum(b),
            " (ranges overlap: within noise)" if f.overlap() else ""))
    f = F.get("idle.rss")
    if f is None or f.med("hfs") is None:
        out.append("- NOT MEASURED  under %.0f KiB per idle connection"
                   % IDLE_LIMIT_KIB)
    else:
        a = f.med("hfs")
        out.append("- %s  under %.0f KiB per idle connection (RSS): %s KiB "
                   "(nginx %s KiB)" % ("PASS" if a < IDLE_LIMIT_KIB else "FAIL",
                                       IDLE_LIMIT_KIB, fnum(a),
                                       fnum(f.med("nginx"))))
    return out


def render_log(L):
    out = ["## Access log: on vs off", "",
           "The same daemon twice in the same run, alternating, the second "
           "with logging.access_log writing every request to a file.", "",
           "| measurement | access log on | off | on/off | |",
           "|---|---|---|---|---|"]
    for f in L.values():
        out.append("| %s | %s | %s | %s | %s |" % (
            f.label, f.cell("hfslog"), f.cell("hfs"), f.ratio(),
            "within noise" if f.overlap() else ""))
    return out + [""]


def render(F, L, machine, warnings):
    out = header(machine)
    out.append("")
    out.append("| measurement | hmac-file-server | nginx | ours/nginx | |")
    out.append("|---|---|---|---|---|")
    for f in F.values():
        out.append("| %s | %s | %s | %s | %s |" % (
            f.label, f.cell("hfs"), f.cell("nginx"), f.ratio(),
            "within noise" if f.overlap() else ""))
    out.append("")
    out.append("(*) Not the same work: hmac-file-server answers 201 only after "
               "fdatasync of the data and fsync of the directories (the upload "
               "is on disk); nginx's WebDAV PUT never fsyncs (the upload is in "
               "the page cache and lost on power failure).")
    out.append("MB = 10^6 bytes. Idle connection memory is the server's own "
               "(user space); kernel socket buffers are not included for "
               "either server.")
    out.append("")
    if L:
        out.extend(render_log(L))
    out.extend(targets(F, machine))
    if warnings:
        out.extend(["", "## Warnings", ""])
        out.extend("- " + w for w in warnings)
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 3:
        print("usage: report.py RAW OUT.md", file=sys.stderr)
        return 2
    F, L, machine, warnings = build(parse(sys.argv[1]))
    text = render(F, L, machine, warnings)
    with open(sys.argv[2], "w") as f:
        f.write(text)
    sys.stdout.write("\n" + text)
    print("\n(written to %s)" % sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
