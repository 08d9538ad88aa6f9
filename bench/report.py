#!/usr/bin/env python3
"""Summarise bench lines "tool wall cpu peak rc size alloc" from stdin:
median wall (min-max), median CPU, max peak RSS, size, and the ratio of the
median wall to gcore's."""
import collections, statistics as st, sys

rows = collections.defaultdict(list)
for line in sys.stdin:
    parts = line.split()
    if len(parts) != 7:
        continue
    t, wall, cpu, peak, rc, size, alloc = parts
    rows[t].append((float(wall), float(cpu), float(peak), int(size), int(alloc), rc))
g = st.median(r[0] for r in rows["gcore"]) if rows.get("gcore") else None
print(f"{'tool':10s} {'wall s':>8s} {'min-max':>13s} {'cpu s':>7s} {'peak MiB':>9s} {'size B':>14s} {'alloc B':>14s} {'/gcore':>7s}")
for t, rs in rows.items():
    w = [r[0] for r in rs]
    med = st.median(w)
    ratio = f"{med / g:.2f}" if g else "-"
    bad = [r[5] for r in rs if r[5] != "0"]
    note = f"  (exit codes {bad})" if bad else ""
    print(f"{t:10s} {med:8.3f} {min(w):6.3f}-{max(w):6.3f} {st.median(r[1] for r in rs):7.3f} "
          f"{max(r[2] for r in rs):9.1f} {rs[-1][3]:14d} {rs[-1][4]:14d} {ratio:>7s}{note}")
