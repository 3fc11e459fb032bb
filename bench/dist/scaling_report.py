#!/usr/bin/env python3
"""The report of bench/dist/run_dist_gpu.sh: from each run's metrics.jsonl (rank 0's log),
tokens/s (median over the steps after the warm-up), the 2-GPU speedup at the same per-GPU batch,
the communication time per step (CUDA events around each collective: reduce-scatter, all-gather,
all-reduce; and the host time blocked waiting for them, i.e. what the backward did not hide),
the scaling table with 4 and 8 GPUs EXTRAPOLATED from the 2-GPU profile, and the loss curves.

Extrapolation (labelled in every output): per-GPU compute is what 1 GPU measures (same per-GPU
batch); a ring collective moves (N-1)/N of the buffer per GPU, so at equal bus bandwidth per GPU
(NVSwitch: every GPU keeps its full NVLink bandwidth at 4 and 8) the collective time scales as
2(N-1)/N times the 2-GPU time, and so does the exposed part. Nothing about 4 or 8 GPUs here was
measured.

Usage: scaling_report.py --logs DIR --out DIR [--warmup 10]
Writes report.md, scaling.json and loss_curves.png (when matplotlib is there) into --out."""
import argparse
import json
import os
import statistics


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def summarise(rows, warmup):
    run = next((r for r in rows if r.get("type") == "run"), {})
    train = [r for r in rows if r.get("type") == "train"]
    timed = [r for r in train if r["step"] > warmup] or train
    out = {
        "steps": len(train),
        "world": run.get("world", 1),
        "tokens_per_step": run.get("tokens_per_step"),
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in timed) if timed else None,
        "losses": [(r["step"], r["loss"]) for r in train],
    }
    if out["tokens_per_s"] and out["tokens_per_step"]:
        out["step_ms"] = 1000.0 * out["tokens_per_step"] / out["tokens_per_s"]
    comm = [r["comm"] for r in timed if "comm" in r]
    if comm:
        out["comm_ms"] = {k: statistics.mean(c.get(k, 0.0) for c in comm)
                          for k in ("reduce_scatter_ms", "all_gather_ms", "all_reduce_ms", "wait_ms")}
        out["comm_mb"] = {k: statistics.mean(c.get(k, 0.0) for c in comm)
                          for k in ("reduce_scatter_mb", "all_gather_mb", "all_reduce_mb")}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    runs = {}
    for name in sorted(os.listdir(args.logs)):
        if name.endswith(".metrics.jsonl"):
            runs[name[: -len(".metrics.jsonl")]] = summarise(load(os.path.join(args.logs, name)), args.warmup)

    lines = ["# Data-parallel training on 2 GPUs (bench/dist/run_dist_gpu.sh)", ""]
    lines += ["Per-GPU batch 16 x 1024 tokens, grad_accum 4; tokens/s is the median over steps > "
              f"{args.warmup} (rank 0's metrics; all GPUs' tokens).", ""]
    lines += ["| run | GPUs | global batch | tokens/s | step ms | reduce-scatter ms | all-gather ms | "
              "all-reduce ms | exposed wait ms |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        c = r.get("comm_ms", {})
        tps = f"{r['tokens_per_s']:,.0f}" if r.get("tokens_per_s") else "-"
        step = f"{r['step_ms']:.1f}" if r.get("step_ms") else "-"
        batch = name.split("-b")[-1].split("-")[0] if "-b" in name else "?"
        lines.append(f"| {name} | {r['world']} | {batch} | {tps} | {step} | "
                     f"{c.get('reduce_scatter_ms', 0):.2f} | {c.get('all_gather_ms', 0):.2f} | "
                     f"{c.get('all_reduce_ms', 0):.2f} | {c.get('wait_ms', 0):.2f} |")
    lines.append("")

    scaling = {}
    lines += ["## Scaling at the same per-GPU batch (1 and 2 GPUs measured; 4 and 8 EXTRAPOLATED "
              "from the 2-GPU profile, not measured)", "",
              "| preset | GPUs | tokens/s | speedup | efficiency | comm busy ms/step | exposed ms/step | source |",
              "|---|---|---|---|---|---|---|---|"]
    for preset in ("125m", "350m"):
        one, two = runs.get(f"{preset}-1gpu-b16"), runs.get(f"{preset}-2gpu-b32")
        if not one or not two or not one.get("step_ms") or not two.get("step_ms"):
            continue
        c = two.get("comm_ms", {})
        busy2 = c.get("reduce_scatter_ms", 0) + c.get("all_gather_ms", 0) + c.get("all_reduce_ms", 0)
        exposed2 = max(0.0, two["step_ms"] - one["step_ms"])
        rows = [(1, one["step_ms"], 0.0, 0.0, "measured"), (2, two["step_ms"], busy2, exposed2, "measured")]
        for n in (4, 8):
            f = 2.0 * (n - 1) / n
            rows.append((n, one["step_ms"] + exposed2 * f, busy2 * f, exposed2 * f, "extrapolated"))
        scaling[preset] = []
        for n, step_ms, busy, exposed, source in rows:
            tps = one["tokens_per_s"] * n * one["step_ms"] / step_ms
            speedup = tps / one["tokens_per_s"]
            eff = speedup / n
            scaling[preset].append({"gpus": n, "tokens_per_s": tps, "speedup": speedup, "efficiency": eff,
                                    "comm_busy_ms": busy, "exposed_ms": exposed, "source": source})
            lines.append(f"| {preset} | {n} | {tps:,.0f} | {speedup:.2f}x | {100 * eff:.1f}% | {busy:.2f} | "
                         f"{exposed:.2f} | {source} |")
    lines += ["", "Extrapolation: per-GPU compute as measured on 1 GPU; collective time and its exposed "
              "part x 2(N-1)/N (ring algorithms at the 2-GPU bus bandwidth per GPU, as on an NVSwitch "
              "host). 4- and 8-GPU machines were not available; these rows are estimates.", ""]

    a, b = runs.get("125m-1gpu-b32"), runs.get("125m-2gpu-b32")
    if a and b:
        pairs = [(sa, la, lb) for (sa, la), (sb, lb) in zip(a["losses"], b["losses"]) if sa == sb]
        if pairs:
            worst = max(abs(la - lb) for _, la, lb in pairs)
            lines.append(f"Loss curves, 125M, global batch 32 x 1024 x 4 on 1 GPU and on 2 GPUs x 16: "
                         f"{len(pairs)} steps, largest difference {worst:.4f} nats "
                         f"(bf16 activations: not bit-equal), final {pairs[-1][1]:.4f} vs {pairs[-1][2]:.4f}.")
    z, p = runs.get("125m-2gpu-b32"), runs.get("125m-2gpu-b32-allreduce")
    if z and p and z.get("tokens_per_s") and p.get("tokens_per_s"):
        lines.append(f"ZeRO-1 (reduce-scatter + all-gather) vs plain all-reduce, 125M on 2 GPUs: "
                     f"{z['tokens_per_s']:,.0f} vs {p['tokens_per_s']:,.0f} tokens/s.")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "scaling.json"), "w") as f:
        json.dump({"runs": {k: {kk: vv for kk, vv in v.items() if kk != "losses"} for k, v in runs.items()},
                   "scaling": scaling}, f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no loss_curves.png")
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, style in (("125m-1gpu-b32", "-"), ("125m-2gpu-b32", "--"), ("125m-2gpu-b32-allreduce", ":")):
        if name in runs:
            s, l = zip(*runs[name]["losses"])
            axes[0].plot(s, l, style, label=name)
    axes[0].set_title("125M DIFF V1, global batch 32 x 1024 x 4: 1 GPU vs 2 GPUs")
    for name in ("350m-1gpu-b16", "350m-2gpu-b32", "125m-1gpu-b16"):
        if name in runs and runs[name].get("tokens_per_step"):
            tok = runs[name]["tokens_per_step"]
            s, l = zip(*runs[name]["losses"])
            axes[1].plot([x * tok / 1e6 for x in s], l, label=name)
    axes[1].set_title("same per-GPU batch: loss against tokens seen")
    axes[1].set_xlabel("million tokens")
    for ax in axes:
        ax.set_ylabel("train loss (nats)")
        ax.legend()
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "loss_curves.png"), dpi=110)


if __name__ == "__main__":
    main()
