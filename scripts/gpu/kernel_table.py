#!/usr/bin/env python3
"""Sums an Nsight Compute CSV (--csv --print-units base, metrics gpu__time_duration.sum and
dram__bytes_read.sum) per kernel: launches, total and mean time, DRAM bytes read and the read
bandwidth of each kernel, largest total first. Used by scripts/gpu/profile_decode.sh."""
import csv
import re
import sys
from collections import defaultdict


def short(name):
    # "void ns::(anonymous namespace)::kernel<int, (Enum)1>(args)" -> "kernel<int, (Enum)1>",
    # at most 110 characters (also used by trace_table.py)
    name = name.replace("(anonymous namespace)::", "").replace("void ", "", 1)
    name = re.sub(r"\([^()]*\)$", "", name)  # the parameter list
    name = re.sub(r"\b[a-z_]+::", "", name)
    return name[:110]


def main(path):
    launches = defaultdict(lambda: {"n": 0, "ns": 0.0, "bytes": 0.0})
    per_id = defaultdict(dict)
    names = {}
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    for r in csv.DictReader(lines):
        try:
            value = float(r["Metric Value"].replace(",", ""))
        except (KeyError, ValueError):
            continue
        per_id[r["ID"]][r["Metric Name"]] = value
        names[r["ID"]] = short(r["Kernel Name"])
    for i, m in per_id.items():
        k = launches[names[i]]
        k["n"] += 1
        k["ns"] += m.get("gpu__time_duration.sum", 0.0)
        k["bytes"] += m.get("dram__bytes_read.sum", 0.0)
    total = sum(k["ns"] for k in launches.values())
    print(f"{len(per_id)} kernels, {total / 1e6:.3f} ms in all")
    print(f"{'launches':>8} {'total ms':>9} {'mean us':>8} {'MB read':>8} {'GB/s':>7}  kernel")
    for name, k in sorted(launches.items(), key=lambda kv: -kv[1]["ns"]):
        gbs = k["bytes"] / k["ns"] if k["ns"] else 0.0
        print(f"{k['n']:>8} {k['ns'] / 1e6:>9.3f} {k['ns'] / k['n'] / 1e3:>8.2f} "
              f"{k['bytes'] / k['n'] / 1e6:>8.2f} {gbs:>7.0f}  {name}")


if __name__ == "__main__":
    main(sys.argv[1])
