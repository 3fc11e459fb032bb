#!/usr/bin/env python3
"""Per-kernel times of the decode steps in a kernel trace (bench/cuda/tools/kernel_trace.cpp:
"start_ns,end_ns,name" per kernel, graph nodes included): the kernels after the last prefill kernel
(cuBLASLt / flash attention), with their launches, mean duration, time per step, and the step's
wall time, so one sees where a graph-launched step goes with PDL overlap included (Nsight
Compute times each kernel alone), and what lies between two steps (the idle time, and the copies
traced in it). Used by scripts/gpu/trace_decode.sh.
  trace_table.py TRACE.csv [STEP_KERNEL_REGEX]"""
import csv
import re
import subprocess
import sys
from collections import defaultdict

from kernel_table import short

PREFILL = re.compile(r"nvjet|attention_fwd|cublas|gemm", re.I)


def demangle(names):
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True,
                             check=True).stdout.splitlines()
        return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}
    except (OSError, subprocess.CalledProcessError):
        return {n: n for n in names}


COPY = re.compile(r"memcpy|copy_words", re.I)


def between_steps(trace, decode, marks):
    """The time from each step's last kernel (its marker) to the next step's first kernel that is
    not a copy, and the copies in it (copy-engine transfers, traced as memcpy_*, and copy kernels),
    averaged over the steps."""
    gaps, copies = [], defaultdict(lambda: [0, 0.0])
    for a, b in zip(marks, marks[1:]):
        end = decode[a][0] + decode[a][1]
        first = next((k for k in decode[a + 1: b + 1] if not COPY.search(k[2])), None)
        if first is None:
            continue
        gaps.append(first[0] - end)
        for s, d, name in trace:
            if COPY.search(name) and end <= s < first[0]:
                copies[short(name)][0] += 1
                copies[short(name)][1] += d
    if not gaps:
        return "between steps: no step boundary"
    k = len(gaps)
    parts = ", ".join(f"{total / k / 1e3:.1f} us {name} ({count / k:.1f})"
                      for name, (count, total) in sorted(copies.items()))
    return (f"between steps: {sum(gaps) / k / 1e3:.1f} us from a step's last kernel to the next "
            f"step's first; copies in it per step: {parts or 'none'}")


def steady_marks(decode, marks):
    """The markers bounding the longest run of steps whose wall time (marker end to marker end)
    is at most twice the median step's."""
    ends = [decode[i][0] + decode[i][1] for i in marks]
    walls = [b - a for a, b in zip(ends, ends[1:])]
    if not walls:
        return marks
    limit = 2 * sorted(walls)[len(walls) // 2]
    best, start = (0, 0), 0
    for i, w in enumerate(walls + [float("inf")]):
        if w > limit:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = i + 1
    return marks[best[0]: best[1] + 1]


def main(path, step_regex):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(l for l in f if l.strip() and not l.startswith("Processing")))
    if not rows:
        sys.exit(f"{path}: no rows")
    readable = demangle(sorted({r["name"] for r in rows}))
    kernels = []
    for r in rows:
        try:
            start = float(r["start_ns"])
            kernels.append((start, float(r["end_ns"]) - start, readable[r["name"]]))
        except (ValueError, TypeError, KeyError):
            continue
    kernels.sort()
    last_prefill = max((i for i, k in enumerate(kernels) if PREFILL.search(k[2])), default=-1)
    decode = [k for k in kernels[last_prefill + 1:] if "memcpy" not in k[2].lower()]
    if not decode:
        sys.exit(f"{path}: no kernels after the last prefill kernel")
    step_re = re.compile(step_regex)
    # the window from a step marker's end to a later one's end: whole steps, each with the gap
    # before its first kernel; the longest run of steps none of which took over twice the median
    # step (a run may hold a pause between phases of the benchmark: tens of ms that would swamp
    # the per-kernel times)
    marks = [i for i, k in enumerate(decode) if step_re.search(k[2])]
    if not marks:
        sys.exit(f"{path}: no kernel matches {step_regex!r}")
    marks = steady_marks(decode, marks)
    steps = len(marks)
    window = decode[marks[0] + 1: marks[-1] + 1]
    origin = decode[marks[0]][0] + decode[marks[0]][1]
    wall = window[-1][0] + window[-1][1] - origin
    n = steps - 1
    # span: start to end (with PDL this includes waiting for the kernel before); added: how much
    # later the step's running front ends because of this kernel (end - latest end before it),
    # which sums to the step's wall time
    per = defaultdict(lambda: [0, 0.0, 0.0])
    busy_end, busy = origin, 0.0
    for s, d, name in window:
        per[short(name)][0] += 1
        per[short(name)][1] += d
        per[short(name)][2] += max(0.0, s + d - busy_end)
        lo = max(s, busy_end)  # union of kernel intervals: time with some kernel running
        if s + d > lo:
            busy += s + d - lo
        busy_end = max(busy_end, s + d)
    print(f"{n} decode steps, {wall / n / 1e3:.1f} us per step (wall), a kernel running "
          f"{100 * busy / wall:.1f}% of it; {len(window) / n:.1f} kernels per step")
    print(between_steps(kernels[last_prefill + 1:], decode, marks))
    print(f"{'added us':>9} {'per call':>8} {'span us':>8} {'calls':>6}  kernel (per step)")
    for name, (count, total, added) in sorted(per.items(), key=lambda kv: -kv[1][2]):
        print(f"{added / n / 1e3:9.1f} {added / count / 1e3:8.2f} {total / count / 1e3:8.2f} "
              f"{count / n:6.1f}  {name}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else r"sample_final|argmax")
