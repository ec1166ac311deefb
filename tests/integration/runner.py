"""Runs the test_* functions of one integration file, in file order.

    python3 tests/integration/runner.py tests/integration/test_basic.py

Prints PASS:/FAIL:/SKIP: file/test per test (with the traceback on failure)
and ends with "<filestem>: N passed, N failed" (", N skipped" appended when
some were skipped); exit status 1 if any failed.  Each test has a time limit
(120 s, or @hfs.timeout(s)) enforced with SIGALRM so a hung daemon cannot
hang CI.  ONLY_TEST=name[,name] runs just those tests.
"""

import importlib.util
import inspect
import os
import signal
import sys
import time
import traceback

DEFAULT_TIMEOUT = 120


class TestTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit")


def load(path):
    sys.dont_write_bytecode = True
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    stem = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return stem, mod


def tests_of(mod):
    fns = [f for name, f in vars(mod).items()
           if name.startswith("test_") and inspect.isfunction(f)
           and f.__module__ == mod.__name__]
    return sorted(fns, key=lambda f: f.__code__.co_firstlineno)


def run_one(stem, fn, skip_exc):
    limit = getattr(fn, "hfs_timeout", DEFAULT_TIMEOUT)
    name = "%s/%s" % (stem, fn.__name__)
    t0 = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        fn()
        outcome, detail = "PASS", ""
    except skip_exc as e:
        outcome, detail = "SKIP", str(e)
    except TestTimeout:
        outcome = "FAIL"
        detail = "timed out after %d s\n%s" % (limit, traceback.format_exc())
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        outcome, detail = "FAIL", traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    dt = time.monotonic() - t0
    if outcome == "SKIP":
        print("SKIP: %s (%s)" % (name, detail), flush=True)
    else:
        print("%s: %s (%.1fs)" % (outcome, name, dt), flush=True)
        if detail:
            print(detail.rstrip(), flush=True)
    return outcome


def main():
    if len(sys.argv) != 2:
        print("usage: runner.py tests/integration/test_X.py", file=sys.stderr)
        return 2
    signal.signal(signal.SIGALRM, _on_alarm)
    path = sys.argv[1]
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        stem, mod = load(path)
        import hfs
    except Exception:
        traceback.print_exc()
        print("FAIL: %s/<import>" % stem)
        print("%s: 0 passed, 1 failed" % stem)
        return 1
    only = [t for t in os.environ.get("ONLY_TEST", "").split(",") if t]
    fns = tests_of(mod)
    if only:
        fns = [f for f in fns if f.__name__ in only]
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    if not os.access(hfs.HFS_BIN, os.X_OK):
        for f in fns:
            print("FAIL: %s/%s (no daemon binary at %s)"
                  % (stem, f.__name__, hfs.HFS_BIN))
        counts["FAIL"] = len(fns)
    else:
        for f in fns:
            counts[run_one(stem, f, hfs.Skip)] += 1
    line = "%s: %d passed, %d failed" % (stem, counts["PASS"], counts["FAIL"])
    if counts["SKIP"]:
        line += ", %d skipped" % counts["SKIP"]
    print(line, flush=True)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
