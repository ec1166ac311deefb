"""check_includes: the dependency rule of docs/architecture.md, enforced.

    python3 tests/lint/check_includes.py

Reads every #include "..." of the daemon's own sources and fails on one that
runs the wrong way between top-level folders:

    lib/      may include lib/ only
    shm/      may include shm/ and lib/util/ only
    worker/   may include worker/, shm/, lib/
    netmon/   may include netmon/, shm/, lib/
    master/   may include master/, shm/, lib/, and the entry header of each
              role it forks: worker/worker.h, netmon/netmon.h

Inside worker/, a module (X.c with X.h; a file split by concern, X_part.c,
belongs to the family X) may include only modules of its own layer or a
lower one (WORKER_LAYERS, bottom first, mirrored in docs/architecture.md);
in the handler layer no family includes another (no protocol knows
another). A worker/ file missing from WORKER_LAYERS fails too: a new file
is placed on purpose.

Over the whole tree, the modules and their #include "..." edges must form
no circle. A module is X.c with X.h; a file split by concern, dir/X_part.c
or .h next to dir/X.c or dir/X.h, is part of module X (shm/table_lease.c
of shm/table, worker/conn_io.c of worker/conn): its parts may call each
other, as the functions of one file did.

Each rule is one check (PASS/FAIL line); the last line is the summary the
test runner reads.
"""

import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

ALLOWED = {
    "lib": lambda h: h.startswith("lib/"),
    "shm": lambda h: h.startswith("shm/") or h.startswith("lib/util/"),
    "worker": lambda h: h.split("/")[0] in ("worker", "shm", "lib"),
    "netmon": lambda h: h.split("/")[0] in ("netmon", "shm", "lib"),
    "master": lambda h: (h.split("/")[0] in ("master", "shm", "lib")
                         or h in ("worker/worker.h", "netmon/netmon.h")),
}


def sources(folder):
    for root, _dirs, files in os.walk(os.path.join(REPO, folder)):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.join(root, f)


def violations(folder):
    bad = []
    for path in sources(folder):
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for h in INCLUDE.findall(text):
            if "/" in h and not ALLOWED[folder](h):
                bad.append("%s includes %s" % (os.path.relpath(path, REPO), h))
    return bad


# worker/'s layers, bottom first. Layer names are for the messages.
WORKER_LAYERS = [
    ("base", ["loop", "cors", "syncpool"]),
    ("transport", ["conn", "handler"]),
    ("services", ["session", "storage", "accesslog", "writeback",
                  "commit"]),
    ("handlers", ["upload", "tus", "ietf", "download", "admin"]),
    ("router", ["router"]),
    ("pause", ["pause"]),
    ("main", ["worker"]),
]
HANDLER_LAYER = "handlers"


def module(path):
    """worker/conn_io.c -> worker/conn_io (a .c and its .h are one node)."""
    return os.path.splitext(path)[0]


def family_module(path):
    """worker/conn_io.c -> worker/conn when worker/conn.c or .h exists."""
    m = module(path)
    d, stem = os.path.split(m)
    root = os.path.join(d, family(stem))
    if root != m and any(os.path.exists(os.path.join(REPO, root + ext))
                         for ext in (".c", ".h")):
        return root
    return m


def family(stem):
    return stem.split("_")[0]


def worker_layer(stem):
    for i, (name, fams) in enumerate(WORKER_LAYERS):
        if stem in fams or family(stem) in fams:
            return i, name
    return None, None


def include_edges():
    """(including file, included header) for every tree source, repo-relative."""
    edges = []
    for folder in list(ALLOWED) + ["tests"]:
        for path in sources(folder):
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            rel = os.path.relpath(path, REPO)
            for h in INCLUDE.findall(text):
                if "/" in h:
                    edges.append((rel, h))
    return edges


def worker_violations(edges):
    bad = []
    for src, h in edges:
        if not src.startswith("worker/"):
            continue
        a = os.path.basename(module(src))
        li, lname = worker_layer(a)
        if li is None:
            bad.append("%s: not placed in a layer (WORKER_LAYERS)" % src)
            continue
        if not h.startswith("worker/"):
            continue
        b = os.path.basename(module(h))
        if family(a) == family(b):
            continue
        hi, hname = worker_layer(b)
        if hi is None:
            bad.append("%s includes %s: not placed in a layer" % (src, h))
        elif hi > li:
            bad.append("%s (%s) includes %s (%s): runs back up"
                       % (src, lname, h, hname))
        elif hi == li and lname == HANDLER_LAYER:
            bad.append("%s includes %s: one handler includes another"
                       % (src, h))
    return sorted(set(bad))


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {}
    for src, h in edges:
        a, b = family_module(src), family_module(h)
        if a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    bad = []
    for comp in out:
        members = set(comp)
        inner = sorted("%s -> %s" % (a, b) for a in comp
                       for b in graph[a] if b in members)
        bad.append("circle: %s (%s)" % (", ".join(comp), "; ".join(inner)))
    return bad


def report(name, bad):
    if bad:
        print("FAIL: includes/%s" % name)
        for b in bad:
            print("  " + b)
        return False
    print("PASS: includes/%s" % name)
    return True


def main():
    passed = failed = 0
    for folder in ALLOWED:
        if report(folder, violations(folder)):
            passed += 1
        else:
            failed += 1
    edges = include_edges()
    for name, bad in (("worker-layers", worker_violations(edges)),
                      ("no-circles", cycles(edges))):
        if report(name, bad):
            passed += 1
        else:
            failed += 1
    print("includes: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
