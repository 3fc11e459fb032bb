#!/usr/bin/env python3
"""scripts/gpu/trace_table.py on a synthetic kernel trace: the decode window starts after the last
prefill kernel, each kernel's added time is its end minus the latest end before it (overlapping
PDL spans add only what sticks out), the added times sum to the step's wall time, and names are
shortened; the time between steps and the copies in it are reported; a pause between steps (a
benchmark's phases) is left out of the window. Exits non-zero on the first mismatch."""
import os
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "gpu", "trace_table.py")

# (start, end, name) in ns: a prefill kernel, then three steps of [gemv, attention, sample]; the
# attention starts before the gemv ends (PDL) and the sampler marks the end of a step.
rows = [(0, 5000, "nvjet_sm90_prefill")]
t = 10000
for step in range(3):
    rows += [(t, t + 3000, "_Z4gemvv"), (t + 2000, t + 7000, "_Z9attentionv"),
             (t + 7500, t + 8000, "sample_final_kernel"), (t + 8500, t + 9000, "memcpy_HtoD")]
    t += 10000  # 2 us between steps, a 0.5 us copy in them



def table(trace):
    """trace_table.py's output over the (start, end, name) rows."""
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("start_ns,end_ns,name\n")
        for s, e, n in trace:
            f.write(f"{s},{e},{n}\n")
        path = f.name
    text = subprocess.run([sys.executable, SCRIPT, path], capture_output=True, text=True,
                          check=True).stdout
    os.unlink(path)
    return text


out = table(rows)
lines = out.splitlines()


def fail(msg):
    sys.exit(f"test_trace_table: {msg}\n{out}")


# window: from the first step marker's end to the last one's: 2 steps of 10 us
if not lines[0].startswith("2 decode steps, 10.0 us per step"):
    fail("wall time per step")
if not lines[1].startswith("between steps: 2.0 us") or "0.5 us memcpy_HtoD (1.0)" not in lines[1]:
    fail("between steps")
added = {}
for line in lines[3:]:
    parts = line.split()
    added[parts[-1]] = (float(parts[0]), float(parts[1]), float(parts[2]))
# gemv: from the previous step's end (sampler end) 2.0 us gap + 3.0 us run = 5.0 us added
if added.get("gemv") != (5.0, 5.0, 3.0):
    fail(f"gemv row {added.get('gemv')}")
# attention: ends 4 us after the gemv ends; span 5 us
if added.get("attention") != (4.0, 4.0, 5.0):
    fail(f"attention row {added.get('attention')}")
if abs(sum(a[0] for a in added.values()) - 10.0) > 1e-9:
    fail("added times do not sum to the step")

# Two runs of 10 us steps with a 1 ms pause between them (2 steps, then 4): the window is the
# longer run, so the pause does not count and the per-step figures stay those of one step.
rows = [(0, 5000, "nvjet_sm90_prefill")]
t = 10000
for step in range(7):
    if step == 3:
        t += 1_000_000
    rows += [(t, t + 3000, "_Z4gemvv"), (t + 2000, t + 7000, "_Z9attentionv"),
             (t + 7500, t + 8000, "sample_final_kernel")]
    t += 10000
out = table(rows)
lines = out.splitlines()
if not lines[0].startswith("3 decode steps, 10.0 us per step"):
    fail("a pause between steps was not left out")
print("test_trace_table: ok")
