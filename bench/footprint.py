"""The idle memory footprint of the whole service as `bin/serve` runs it.

Starts `honcho start -f Procfile` (web, a worker per queue, beat, Flower) against the bench
database and Redis db, waits until every process is up, lets it idle, then reads
/proc/<pid>/smaps_rollup of honcho and every process below it. RSS counts a page shared by ten
processes ten times (prefork children share the parent's pages copy-on-write); PSS divides each
shared page among the processes that map it, so PSS figures add up to what the machine really
spends. Prints per Procfile entry: processes, RSS, PSS and USS (pages no other process maps),
each the median of --samples readings.

    python -m bench.footprint                          # the Procfile of this checkout
    python -m bench.footprint --procfile /tmp/Procfile.before   # or BENCH_PROCFILE=...
"""

import argparse
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

from bench import harness

KIB = 1024


def children_of():
    tree = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # pid (comm) state ppid ...; comm may hold spaces, so split after its closing paren
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree[ppid].append(int(entry))
    return tree


def descendants(pid):
    tree, found, todo = children_of(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]


def role(argv):
    """Which Procfile entry a process belongs to (prefork children carry their parent's argv)."""
    text = " ".join(argv)
    if argv and os.path.basename(argv[0]) in {"sh", "bash", "dash"}:
        return "shell"  # honcho's `sh -c <command>`, whose child is the command itself
    if "honcho" in text:
        return "honcho"
    if "granian" in text:
        return "web"
    if "uvicorn" in text:
        return "realtime"
    if "celery" in text and "flower" in argv:
        return "flower"
    if "celery" in text and "beat" in argv:
        return "beat"
    if "celery" in text and "worker" in argv and "-Q" in argv:
        return argv[argv.index("-Q") + 1]
    return os.path.basename(argv[0]) if argv else "?"


def rollup(pid):
    """kB values of /proc/<pid>/smaps_rollup: Rss, Pss, Private_Clean, Private_Dirty, ..."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                values[parts[0].rstrip(":")] = int(parts[1])
    return values


def sample(root_pid):
    groups = defaultdict(lambda: {"processes": 0, "rss": 0, "pss": 0, "uss": 0})
    for pid in descendants(root_pid):
        try:
            argv, memory = cmdline(pid), rollup(pid)
        except (OSError, ValueError):
            continue  # exited meanwhile
        group = groups[role(argv)]
        group["processes"] += 1
        group["rss"] += memory.get("Rss", 0)
        group["pss"] += memory.get("Pss", 0)
        group["uss"] += memory.get("Private_Clean", 0) + memory.get("Private_Dirty", 0)
    return groups


def expected_workers(procfile):
    return sum(1 for line in procfile.read_text().splitlines() if " worker " in line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procfile", type=Path, default=harness.PROCFILE)
    parser.add_argument("--idle", type=float, default=30, help="seconds of idling before the first reading")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--interval", type=float, default=5)
    args = parser.parse_args()
    harness.header("idle footprint of the Procfile (PSS from /proc/*/smaps_rollup)",
                   procfile=args.procfile, idle=f"{args.idle:g}s", samples=args.samples)
    harness.ensure_database()
    harness.reset_database()
    harness.reset_redis()

    started = time.monotonic()
    honcho = harness.start_procfile(args.procfile)
    try:
        print(f"all up after {time.monotonic() - started:.1f}s; idling {args.idle:g}s")
        time.sleep(args.idle)
        readings = []
        for n in range(args.samples):
            if n:
                time.sleep(args.interval)
            readings.append(sample(honcho.pid))
    finally:
        harness.stop_procfile(honcho)

    names = sorted({name for reading in readings for name in reading},
                   key=lambda name: -statistics.median(r.get(name, {"pss": 0})["pss"] for r in readings))

    def med(name, field):
        return statistics.median(r[name][field] if name in r else 0 for r in readings)

    print(f"{'entry':<12} {'procs':>5} {'RSS MiB':>9} {'PSS MiB':>9} {'USS MiB':>9}")
    total = defaultdict(float)
    for name in names:
        row = {field: med(name, field) for field in ("processes", "rss", "pss", "uss")}
        for field, value in row.items():
            total[field] += value
        print(f"{name:<12} {row['processes']:>5.0f} {row['rss'] / KIB:>9.1f} {row['pss'] / KIB:>9.1f} "
              f"{row['uss'] / KIB:>9.1f}")
    print(f"{'total':<12} {total['processes']:>5.0f} {total['rss'] / KIB:>9.1f} {total['pss'] / KIB:>9.1f} "
          f"{total['uss'] / KIB:>9.1f}")
    print(f"loadavg at the end: {harness.loadavg()}")


if __name__ == "__main__":
    main()
