#!/usr/bin/env python3
"""Checks difftx's Hugging Face exports with transformers itself (run by run_on_gpu.sh check).

For every model folder under --dir (made by `run_on_gpu.sh prepare`: <name>/hf is the output
of `difftx export hf`, <name>/dump.safetensors what difftx computed), this script:
  1. loads <name>/hf with AutoModelForCausalLM.from_pretrained in fp32, eager attention, and
     requires no missing, unexpected or mismatched keys;
  2. compares its logits on difftx's token ids with difftx's: max |diff| <= 1e-4 * max |logit|;
  3. greedy-generates 32 tokens from difftx's prompt and requires the same tokens as difftx's
     KV-cache decoding (both stop after EOS);
  4. loads AutoTokenizer from the same folder and requires difftx's ids for the paragraph,
     the reserved special-token ids, and decode(ids) == paragraph.
Prints one line per check and exits 1 if any fails. Runs on the CPU; a GPU is not needed.

With --save-dir, it also re-saves every model with transformers' own save_pretrained, in bf16
as shards (max_shard_size 400KB, with model.safetensors.index.json) and in fp16 as one file,
with the tokenizer, plus the fp32 logits transformers computes from those saved weights
(<variant>.logits.safetensors), and packs each model's folder into <save-dir>/<name>.tar:
`run_on_gpu.sh verify-import` imports them with difftx and compares the logits.
"""
import argparse
import sys
import tarfile
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

TOLERANCE = 1e-4  # of the logit scale (max |logit|)


def load_model(path):
    kwargs = dict(attn_implementation="eager", output_loading_info=True)
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    except TypeError:  # transformers < 4.56 names it torch_dtype
        return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, **kwargs)


def check_model(name, folder, paragraph):
    results = []

    def report(what, ok, detail):
        results.append(ok)
        print(f"  [{'PASS' if ok else 'FAIL'}] {what}: {detail}")

    hf_dir = folder / "hf"
    dump = load_file(str(folder / "dump.safetensors"))
    print(f"{name}: {hf_dir}")

    model, info = load_model(str(hf_dir))
    model.eval()
    keys = {k: list(info.get(k, [])) for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    keys.update({k: list(v) for k, v in info.items() if k not in keys and v})  # any other report
    report("from_pretrained", all(not v for v in keys.values()) and model.dtype == torch.float32,
           f"{type(model).__name__} ({model.config.model_type}), {model.dtype}, "
           + ", ".join(f"{k} {v}" for k, v in keys.items()))

    with torch.inference_mode():
        ids = dump["logit_ids"].long()[None, :]
        ours = dump["logits"].double()
        theirs = model(input_ids=ids).logits[0].double()
        diff = (theirs - ours).abs().max().item()
        scale = ours.abs().max().item()
        report("logits", diff <= TOLERANCE * scale,
               f"{tuple(ours.shape)}, max|diff| {diff:.3e}, logit scale {scale:.3f}, "
               f"ratio {diff / scale:.2e} (limit {TOLERANCE:.0e})")

        prompt = dump["prompt_ids"].long()[None, :]
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                             max_new_tokens=32, eos_token_id=2, pad_token_id=0)
        theirs_gen = out[0, prompt.shape[1]:].tolist()
        ours_gen = dump["generated"].tolist()
        report("greedy generation", theirs_gen == ours_gen,
               f"{len(ours_gen)} tokens identical" if theirs_gen == ours_gen
               else f"difftx {ours_gen} vs transformers {theirs_gen}")

    tok = AutoTokenizer.from_pretrained(str(hf_dir))
    hf_ids = tok(paragraph)["input_ids"]
    ours_ids = dump["text_ids"].tolist()
    same = hf_ids == ours_ids
    first = next((i for i, (a, b) in enumerate(zip(hf_ids, ours_ids)) if a != b), min(len(hf_ids), len(ours_ids)))
    report("AutoTokenizer ids", same,
           f"{type(tok).__name__}, {len(ours_ids)} ids identical" if same
           else f"first difference at {first}: difftx {ours_ids[first:first + 8]} vs HF {hf_ids[first:first + 8]}")
    specials = (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id)
    report("special tokens", specials == (0, 1, 2, 3), f"pad/bos/eos/unk = {specials}")
    decoded = tok.decode(hf_ids)
    report("AutoTokenizer decode", decoded == paragraph,
           "decode(ids) == paragraph" if decoded == paragraph else f"{decoded!r}")
    return all(results)


def save_variants(name, folder, save_dir):
    """Folders written by transformers itself, for difftx's importer (see the module doc)."""
    hf_dir = folder / "hf"
    ids = load_file(str(folder / "dump.safetensors"))["logit_ids"].long()[None, :]
    for variant, dtype, shard in (("bf16_sharded", torch.bfloat16, "400KB"), ("f16", torch.float16, None)):
        target = save_dir / name / variant
        model, _ = load_model(str(hf_dir))
        model = model.to(dtype)
        model.save_pretrained(str(target), **({"max_shard_size": shard} if shard else {}))
        AutoTokenizer.from_pretrained(str(hf_dir)).save_pretrained(str(target))
        back, _ = load_model(str(target))  # fp32 from the saved bf16/fp16 weights
        with torch.inference_mode():
            logits = back(input_ids=ids).logits[0].float().contiguous()
        save_file({"logit_ids": ids[0].to(torch.int32).contiguous(), "logits": logits},
                  str(save_dir / name / f"{variant}.logits.safetensors"))
        files = sorted(p.name for p in target.iterdir())
        print(f"  saved {name}/{variant} with transformers ({dtype}): {', '.join(files)}")
    with tarfile.open(save_dir / f"{name}.tar", "w") as tar:
        tar.add(save_dir / name, arcname=name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, type=Path, help="folder written by run_on_gpu.sh prepare")
    parser.add_argument("--save-dir", type=Path, help="also re-save the models with transformers here")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
          f"device for the check: cpu (fp32, eager attention)")
    paragraph = (args.dir / "paragraph.txt").read_text(encoding="utf-8")
    names = sorted(p.name for p in args.dir.iterdir() if (p / "dump.safetensors").exists())
    if not names:
        print(f"no model folders with dump.safetensors under {args.dir}")
        return 1
    ok = [check_model(n, args.dir / n, paragraph) for n in names]
    if args.save_dir:
        for n in names:
            save_variants(n, args.dir / n, args.save_dir)
    passed = sum(ok)
    print(f"{passed} passed, {len(ok) - passed} failed")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
