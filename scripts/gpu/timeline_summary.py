#!/usr/bin/env python3
"""Summarize paged-attention timelines: for each config in the output of
scripts/gpu/attention_timeline.sh (run with CALLS=N, so that N attention calls of one decode
step were recorded), the median over the calls of each stamp's min / median / max time from the
first block's start, in microseconds. One call's table varies by a few tenths of a microsecond;
the median over the calls shows where the time goes.

    scripts/gpu/timeline_summary.py OUTPUT.txt [...]
"""
import statistics
import sys


def summarize(path):
    text = open(path, encoding="utf-8").read()
    configs = text.split("====")[1:]
    if not configs:
        print(f"{path}: no '==== config' sections (attention_timeline.sh output expected)")
        return 1
    for section in configs:
        name = section.split("\n")[0].strip()
        tables = section.split("paged attention timeline")[1:]
        stamps = {}
        for table in tables:
            for line in table.split("\n")[2:]:
                fields = line.split()
                if len(fields) != 5:
                    continue
                try:
                    values = tuple(float(x) for x in fields[2:])
                except ValueError:
                    continue
                stamps.setdefault(fields[0], []).append(values)
        print(f"{name}: {len(tables)} calls; per stamp, the median over the calls of the min / median / max (us)")
        for stamp, rows in stamps.items():
            cols = [statistics.median(r[i] for r in rows) for i in range(3)]
            print(f"  {stamp:8s} {cols[0]:7.2f} {cols[1]:7.2f} {cols[2]:7.2f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__.strip())
        sys.exit(2)
    sys.exit(max(summarize(p) for p in sys.argv[1:]))
