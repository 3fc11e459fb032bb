#!/usr/bin/env python3
"""Hugging Face transformers `generate` on the same weights as a `difftx serve` run: the
reference point of bench/serve/run_gpu_serve_bench.sh.

Loads a folder written by `difftx export hf` (DiffLlama or Llama) in bf16 on the GPU and, for
each batch size B, generates from B prompts of P random token ids (ids drawn from
[first_id, vocab), seed fixed) exactly N new tokens each (greedy, min_new_tokens = N, so EOS
cannot end a row early), with the default dynamic KV cache and SDPA attention where the model
supports it. Static batching: all B rows start and end together, the way `generate` works.

Per batch size (median of --repeats timed runs after one warm-up run):
  output_tokens_per_s  B * N / time of the whole generate call
  ttft_ms              time of generate(max_new_tokens=1): the prefill plus one token
  itl_ms               (time(N) - time(1)) / (N - 1): one decode step of the batch
Results go to stdout (a table) and, with --out, to a JSON list.
"""
import argparse
import json
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def timed_generate(model, ids, new_tokens):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    assert out.shape == (ids.shape[0], ids.shape[1] + new_tokens), out.shape
    return elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="folder written by `difftx export hf`")
    ap.add_argument("--label", default="", help="name of this run in the output")
    ap.add_argument("--batch", default="1,16,64,256", help="batch sizes, comma-separated")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--first-id", type=int, default=261)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="write the results as JSON to this file")
    args = ap.parse_args()
    if args.max_tokens < 2:
        sys.exit("hf_generate_bench: error: --max-tokens must be >= 2")

    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}", flush=True)
    import transformers
    print(f"transformers {transformers.__version__}", flush=True)
    model = None
    for impl in ("sdpa", "eager"):
        try:
            try:
                model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16,
                                                             attn_implementation=impl)
            except TypeError:  # transformers before `dtype` replaced `torch_dtype`
                model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.bfloat16,
                                                             attn_implementation=impl)
            break
        except (ValueError, ImportError) as e:
            print(f"attn_implementation={impl} unavailable: {e}", flush=True)
    if model is None:
        sys.exit(f"hf_generate_bench: error: transformers cannot load {args.model}")
    model = model.to("cuda").eval()
    vocab = model.config.vocab_size
    print(f"{args.label}: {type(model).__name__}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
          f"parameters, attention {model.config._attn_implementation}", flush=True)

    gen = torch.Generator().manual_seed(1)
    results = []
    print(f"{'batch':>6} {'out tok/s':>10} {'TTFT ms':>9} {'ITL ms':>8} {'total s':>8}", flush=True)
    for b in [int(x) for x in args.batch.split(",") if x]:
        ids = torch.randint(args.first_id, vocab, (b, args.prompt_tokens), generator=gen).to("cuda")
        try:
            timed_generate(model, ids, args.max_tokens)  # warm-up
            full = statistics.median(timed_generate(model, ids, args.max_tokens) for _ in range(args.repeats))
            first = statistics.median(timed_generate(model, ids, 1) for _ in range(args.repeats))
        except torch.cuda.OutOfMemoryError as e:
            print(f"{b:>6} out of memory: {e}", flush=True)
            results.append({"label": args.label, "batch": b, "error": "out of memory"})
            torch.cuda.empty_cache()
            continue
        r = {"label": args.label, "batch": b, "prompt_tokens": args.prompt_tokens, "max_tokens": args.max_tokens,
             "output_tokens_per_s": b * args.max_tokens / full, "ttft_ms": 1e3 * first,
             "itl_ms": 1e3 * (full - first) / (args.max_tokens - 1), "total_s": full}
        results.append(r)
        print(f"{b:>6} {r['output_tokens_per_s']:>10.1f} {r['ttft_ms']:>9.1f} {r['itl_ms']:>8.2f} {full:>8.2f}",
              flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
