#!/usr/bin/env python3
"""PyTorch side of the attention benchmark (bench/cuda/bench_attention.cpp times the fused kernels).

Times the same shapes the way the official Differential Transformer code does it, with
torch.nn.functional.scaled_dot_product_attention (causal, bf16, layout (B, heads, T, d)):
  diff_2call : two SDPA calls with the 2d-wide V:  out = sdpa(q1,k1,v) - lambda sdpa(q2,k2,v)
  diff_4call : four SDPA calls with d-wide V halves (each a standard flash call), cat, combine
  softmax_2h : the baseline, one SDPA call with 2h heads of d
each under PyTorch's default backend choice and under every SDPA backend that accepts the shape
(flash, efficient, cudnn; math only if nothing else runs). Forward and forward+backward
(autograd; lambda is a leaf needing its gradient), CUDA events, median over repeats after warm-up.
FLOPs as in bench_attention.cpp: DIFF fwd 6 B h T^2 d, baseline 4 B h T^2 d, bwd 2.5 x fwd.

With --ours FILE (the RESULT lines of bench_attention), prints the comparison table: fused V1
(fwd+bwd) against the best PyTorch DIFF path of the same run, and the ratios.
"""
import argparse
import statistics
import sys
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def diff_2call(t):
    a1 = sdpa(t["q1"], t["k1"], t["v"])
    a2 = sdpa(t["q2"], t["k2"], t["v"])
    return a1 - t["lam"] * a2


def diff_4call(t):
    a1 = torch.cat([sdpa(t["q1"], t["k1"], t["v1"]), sdpa(t["q1"], t["k1"], t["v2"])], dim=-1)
    a2 = torch.cat([sdpa(t["q2"], t["k2"], t["v1"]), sdpa(t["q2"], t["k2"], t["v2"])], dim=-1)
    return a1 - t["lam"] * a2


def softmax_2h(t):
    return sdpa(t["qb"], t["kb"], t["vb"])


METHODS = {"diff_2call": diff_2call, "diff_4call": diff_4call, "softmax_2h": softmax_2h}


def make_tensors(B, h, T, d):
    dev, dt = "cuda", torch.bfloat16
    g = torch.Generator(device=dev).manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, device=dev, dtype=dt, generator=g).requires_grad_(True)

    t = {
        "q1": rnd(B, h, T, d), "q2": rnd(B, h, T, d), "k1": rnd(B, h, T, d), "k2": rnd(B, h, T, d),
        "v": rnd(B, h, T, 2 * d), "v1": rnd(B, h, T, d), "v2": rnd(B, h, T, d),
        "qb": rnd(B, 2 * h, T, d), "kb": rnd(B, 2 * h, T, d), "vb": rnd(B, 2 * h, T, d),
        "lam": torch.tensor(0.8, device=dev, dtype=torch.float32, requires_grad=True),
    }
    t["dout_diff"] = torch.randn(B, h, T, 2 * d, device=dev, dtype=dt, generator=g)
    t["dout_base"] = torch.randn(B, 2 * h, T, d, device=dev, dtype=dt, generator=g)
    return t


def median_ms(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def kernel_names(fn):
    """Names of the CUDA kernels one call launches (to tell which SDPA backend ran)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    names = {e.key for e in prof.key_averages() if e.device_type.name == "CUDA"}
    for key, tag in (("cudnn", "cudnn"), ("sm90_xmma", "cudnn"), ("flash", "flash"),
                     ("fmha", "efficient"), ("efficient", "efficient"), ("cutlass", "efficient")):
        if any(key in n.lower() for n in names):
            return tag
    return "math?"


def time_method(name, t, backend, warmup, reps):
    fn = METHODS[name]
    dout = t["dout_base"] if name == "softmax_2h" else t["dout_diff"]

    def fwd():
        with torch.no_grad():
            fn(t)

    def fwdbwd():
        out = fn(t)
        out.backward(dout)

    def run(f):
        if backend == "default":
            return f()
        with sdpa_kernel([BACKENDS[backend]]):
            return f()

    run(fwdbwd)  # raises if this backend rejects the shape
    used = backend
    if backend == "default":
        used = "default:" + kernel_names(lambda: run(fwd))
    f_ms = median_ms(lambda: run(fwd), warmup, reps)
    fb_ms = median_ms(lambda: run(fwdbwd), warmup, reps)
    return used, f_ms, fb_ms


def flops(name, B, h, T, d):
    return (6.0 if name != "softmax_2h" else 4.0) * B * h * T * T * d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="seq 1K and 4K only")
    ap.add_argument("--ours", help="file with bench_attention's RESULT lines: print the comparison")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name(0)}")
    seqs = [1024, 4096] if args.quick else [1024, 2048, 4096, 8192, 16384]
    results = []  # (method, backend, d, T, B, h, fwd_ms, fwdbwd_ms)
    print(f"\n{'method':<11} {'backend':<18} {'d':>4} {'T':>6} {'B':>3} {'h':>3} | {'fwd ms':>9} "
          f"{'f+b ms':>9} | {'fwd TF/s':>8} {'f+b TF/s':>8}")
    for d in (64, 128):
        h = 16 if d == 64 else 8
        for T in seqs:
            B = 16384 // T
            t = make_tensors(B, h, T, d)
            for name in METHODS:
                done_any = False
                for backend in ("default", "flash", "efficient", "cudnn", "math"):
                    if backend == "math" and done_any:
                        continue
                    try:
                        used, f_ms, fb_ms = time_method(name, t, backend, 3, args.reps)
                    except RuntimeError as e:  # backend does not support the shape
                        msg = str(e).splitlines()[0][:60]
                        print(f"{name:<11} {backend:<18} {d:>4} {T:>6} {B:>3} {h:>3} | unsupported ({msg})")
                        continue
                    if backend != "default":
                        done_any = True
                    fl = flops(name, B, h, T, d)
                    print(f"{name:<11} {used:<18} {d:>4} {T:>6} {B:>3} {h:>3} | {f_ms:9.3f} {fb_ms:9.3f} | "
                          f"{fl / f_ms * 1e-9:8.1f} {3.5 * fl / fb_ms * 1e-9:8.1f}", flush=True)
                    results.append((name, used, d, T, B, h, f_ms, fb_ms))
            del t
            torch.cuda.empty_cache()

    if args.ours:
        ours = {}
        with open(args.ours) as f:
            for line in f:
                if line.startswith("RESULT,"):
                    _, kern, d, T, B, h, fm, bm = line.strip().split(",")
                    ours[(kern, int(d), int(T))] = (float(fm), float(bm))
        print("\nComparison (ms; ratio = best PyTorch time / fused time, > 1 means the fused kernel is faster)")
        print(f"{'d':>4} {'T':>6} | {'V1 fwd':>8} {'V1 f+b':>8} {'TF/s f+b':>8} | {'best torch fwd':>24} "
              f"{'best torch f+b':>24} | {'fwd x':>6} {'f+b x':>6} | {'base fused f+b':>14} {'base torch f+b':>14}")
        for d in (64, 128):
            h = 16 if d == 64 else 8
            for T in seqs:
                B = 16384 // T
                if ("diff_v1_fused", d, T) not in ours:
                    continue
                fm, bm = ours[("diff_v1_fused", d, T)]
                rows = [r for r in results if r[2] == d and r[3] == T and r[0] != "softmax_2h"]
                bf = min(rows, key=lambda r: r[6])
                bfb = min(rows, key=lambda r: r[7])
                base = [r for r in results if r[2] == d and r[3] == T and r[0] == "softmax_2h"]
                bb = min(base, key=lambda r: r[7]) if base else None
                sf, sb = ours.get(("softmax_2h", d, T), (float("nan"), float("nan")))
                fl = flops("diff", B, h, T, d)
                print(f"{d:>4} {T:>6} | {fm:8.3f} {fm + bm:8.3f} {3.5 * fl / (fm + bm) * 1e-9:8.1f} | "
                      f"{bf[6]:8.3f} {bf[0] + '/' + bf[1].replace('default:', 'dflt:'):>15} "
                      f"{bfb[7]:8.3f} {bfb[0] + '/' + bfb[1].replace('default:', 'dflt:'):>15} | "
                      f"{bf[6] / fm:6.2f} {bfb[7] / (fm + bm):6.2f} | {sf + sb:14.3f} "
                      f"{(bb[7] if bb else float('nan')):14.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
