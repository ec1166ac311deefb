#!/usr/bin/env python3
"""proctree.py: a server's whole process tree, for run.sh and idle_conns.py.

  proctree.py cpu PID     prints the CPU time (user + system, all threads)
                          used so far by PID and every descendant, in ms
  proctree.py pids PID    prints PID and every descendant, one line
                          (run.sh reads their /proc/PID/stat itself: a
                          Python start per sample costs a second under load)

On a shared machine throughput moves with whatever else runs; the CPU a
server spends per request moves much less, so run.sh reports both.
"""

import os
import sys


def tree(pid):
    """pid and all its descendants (scanning /proc: works without
    CONFIG_PROC_CHILDREN)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        # comm may contain spaces or ')': the fields follow the last ')'.
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ms(pid):
    """utime + stime of the tree, ms. A process's stat counts all its
    threads (the daemon's sync pool included)."""
    hz = os.sysconf("SC_CLK_TCK")
    ticks = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        ticks += int(fields[11]) + int(fields[12])   # utime, stime
    return ticks * 1000 // hz


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "cpu":
        print(cpu_ms(int(sys.argv[2])))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "pids":
        print(" ".join(str(p) for p in tree(int(sys.argv[2]))))
        return 0
    print("usage: proctree.py cpu|pids PID", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
