#!/usr/bin/env python3
"""HF transformers generate on a model exported by `difftx export hf`: the comparison column of
`difftx bench` (which runs this script). For each mode (eager, torch.compile) and each (batch,
context): bf16 weights on the GPU, a static KV cache, greedy decoding of random prompts; prompt
processing tokens/s from a one-token generate, the decode step from the difference between an
N-token and a one-token generate. Writes a JSON list of rows in difftx bench's format."""
import argparse
import json
import sys
import time
import traceback


def ints(text):
    return [int(x) for x in text.split(",") if x]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True, help="folder written by `difftx export hf`")
    p.add_argument("--batch", type=ints, default=[1])
    p.add_argument("--context", type=ints, default=[512])
    p.add_argument("--gen", type=int, default=32)
    p.add_argument("--modes", default="eager,compile")
    p.add_argument("--label", default="")
    p.add_argument("--json", required=True)
    a = p.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    rows = []

    def row(mode, batch, context, test, **kw):
        r = {"model": a.label, "backend": f"HF {mode} (torch {torch.__version__.split('+')[0]}, "
                                          f"transformers {transformers.__version__})",
             "params": 0, "batch": batch, "context": context, "test": test}
        r.update(kw)
        rows.append(r)
        return r

    def save():
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)

    try:
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16)
    model = model.to("cuda").eval()
    vocab = model.config.vocab_size
    kind = model.config.model_type
    print(f"[hf] {kind}: {sum(t.numel() for t in model.parameters()) / 1e6:.1f}M parameters, "
          f"torch {torch.__version__}, transformers {transformers.__version__}", flush=True)
    for mode in a.modes.split(","):
        # "compile": transformers' own compiled decoding (generate compiles the forward with
        # torch.compile(mode="reduce-overhead") when the cache is static and compilation is not
        # disabled). Wrapping model.forward in torch.compile ourselves failed inside transformers
        # 5.17 on the H200 ("accessing tensor output of CUDAGraphs that has been overwritten by a
        # subsequent run"), even with cudagraph_mark_step_begin() and the logits copied out.
        compile_decoding = mode == "compile"
        for batch in a.batch:
            for context in a.context:
                g = torch.Generator().manual_seed(batch * 100003 + context)
                ids = torch.randint(3, vocab, (batch, context), generator=g).to("cuda")
                mask = torch.ones_like(ids)
                cache = "static"

                def generate(n):
                    kw = dict(attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                              do_sample=False, pad_token_id=0)
                    if cache:
                        kw["cache_implementation"] = cache
                    try:
                        return model.generate(ids, disable_compile=not compile_decoding, **kw)
                    except TypeError:  # a transformers without disable_compile
                        return model.generate(ids, **kw)

                def timed(n):
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    out = generate(n)
                    torch.cuda.synchronize()
                    assert out.shape[1] == context + n, out.shape
                    return time.perf_counter() - t

                try:
                    try:
                        timed(a.gen)  # warm-up: compilation, graph capture, allocator
                    except Exception as e:  # a class without static-cache support
                        print(f"[hf] {mode} static cache failed ({e}); dynamic cache", flush=True)
                        cache = None
                        timed(a.gen)
                    timed(a.gen)
                    t1 = min(timed(1) for _ in range(2))
                    tn = min(timed(a.gen) for _ in range(2))
                    step = (tn - t1) / (a.gen - 1)
                    name = mode + ("" if cache else ", dynamic cache")
                    row(name, batch, context, f"pp{context}", tokens_per_s=batch * context / t1)
                    row(name, batch, context, f"tg{a.gen}", tokens_per_s=batch / step,
                        ms_per_step=1e3 * step)
                    print(f"[hf] {name} batch {batch} context {context}: pp {batch * context / t1:.0f} "
                          f"t/s, tg {batch / step:.1f} t/s, {1e3 * step:.3f} ms/step", flush=True)
                except Exception as e:
                    traceback.print_exc()
                    row(mode, batch, context, f"pp{context}+tg{a.gen}",
                        note=f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
                save()
                torch.cuda.empty_cache()
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
