#!/usr/bin/env python3
"""One table from the JSON results of run_gpu_serve_bench.sh: per model and concurrency,
difftx serve (bench_serve: continuous batching over HTTP, streaming) beside transformers
generate (hf_generate_bench.py: static batch of the same size, in-process, no HTTP).

Usage: serve_table.py --serve NAME=serve.json ... --hf NAME=hf.json ...
"""
import argparse
import json


def load(pairs):
    out = {}
    for p in pairs or []:
        name, _, path = p.partition("=")
        try:
            with open(path) as f:
                out[name] = json.load(f)
        except (OSError, ValueError) as e:
            print(f"serve_table: cannot read {path}: {e}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", nargs="*", help="NAME=bench_serve JSON")
    ap.add_argument("--hf", nargs="*", help="NAME=hf_generate_bench JSON")
    args = ap.parse_args()
    serve, hf = load(args.serve), load(args.hf)
    print("| model | clients | difftx tok/s | TTFT p50 / p99 ms | ITL p50 / p99 ms | HF generate tok/s | "
          "HF TTFT ms | HF ITL ms | difftx / HF |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in sorted(set(serve) | set(hf)):
        hf_rows = {r["batch"]: r for r in hf.get(name, [])}
        for r in serve.get(name, []):
            c = r["concurrency"]
            h = hf_rows.get(c, {})
            ours = r["output_tokens_per_s"]
            theirs = h.get("output_tokens_per_s")
            failed = f" ({r['failed']} failed)" if r.get("failed") else ""
            print(f"| {name} | {c} | {ours:,.0f}{failed} | {r['ttft_p50_ms']:.1f} / {r['ttft_p99_ms']:.1f} | "
                  f"{r['itl_p50_ms']:.2f} / {r['itl_p99_ms']:.2f} | "
                  + (f"{theirs:,.0f} | {h['ttft_ms']:.1f} | {h['itl_ms']:.2f} | {ours / theirs:.2f}x |"
                     if theirs else f"{h.get('error', 'n/a')} | | | |"))


if __name__ == "__main__":
    main()
