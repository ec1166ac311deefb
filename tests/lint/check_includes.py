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


def main():
    passed = failed = 0
    for folder in ALLOWED:
        bad = violations(folder)
        if bad:
            failed += 1
            print("FAIL: includes/%s" % folder)
            for b in bad:
                print("  " + b)
        else:
            passed += 1
            print("PASS: includes/%s" % folder)
    print("includes: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
