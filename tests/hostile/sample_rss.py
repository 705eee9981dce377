#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Samples, every 50 ms until process ROOT is gone, the summed anonymous RSS (RssAnon)
of ROOT's grandchildren and their descendants, and writes the peak in kB to OUT. ROOT is
the `timeout` wrapping `uzswap run`; its child, `uzswap run` itself, is left out (its pool
is what the budget charges as compressed memory, not the program's RSS). Also records every descendant pid
ever seen (OUT.pids), so the caller can check none is left behind.
    sample_rss.py ROOT OUT
"""
import os
import sys
import time


def processes():
    """pid -> (ppid, rss_anon_kB) for every process readable now."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                ppid, anon = 0, 0
                for line in f:
                    if line.startswith("PPid:"):
                        ppid = int(line.split()[1])
                    elif line.startswith("RssAnon:"):
                        anon = int(line.split()[1])
            out[int(name)] = (ppid, anon)
        except (OSError, ValueError, IndexError):
            pass
    return out


def descendants(procs, root):
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen, todo = [], [g for c in children.get(root, []) for g in children.get(c, [])]
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(children.get(pid, []))
    return seen


def main():
    root, out = int(sys.argv[1]), sys.argv[2]
    peak, ever = 0, set()
    while os.path.exists(f"/proc/{root}"):
        procs = processes()
        pids = descendants(procs, root)
        ever.update(pids)
        peak = max(peak, sum(procs[p][1] for p in pids))
        time.sleep(0.05)
    with open(out, "w") as f:
        f.write(f"{peak}\n")
    with open(out + ".pids", "w") as f:
        f.write("".join(f"{p}\n" for p in sorted(ever)))


main()
