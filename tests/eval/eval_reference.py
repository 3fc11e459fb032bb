"""Independent PyTorch reference of the evaluation metrics of `difftx eval`.

Written from the project's reference documents (diff-transformer.md sections 1-2 for the model,
evaluation-protocols.md for the metrics) and docs/eval.md's stated choices, not from the C++
code. The model's building blocks (RMSNorm, RoPE, projections, lambda_init) come from
tests/reference/diff_reference.py; the attention is re-written here with explicit attention
logits so they can be measured and quantized. Everything runs in float64.

    /usr/bin/python3 tests/eval/eval_reference.py --config cfg.json --weights w.safetensors \
        --tokens t.safetensors --out out.json [--bits 8 6 4] [--per-head] \
        [--alloc-first R --alloc-rows N --groups groups.json]

tokens: "inputs" (B, T) int32 (and "targets" (B, T) for the losses).
out.json:
  "outliers": {"logits": S, "hidden": S, "per_layer": [{"logits": S, "hidden": S}]} with
     S = {"count", "top1", "top2", "top3", "top10", "top100", "median"}: k-th largest |x| and the
     lower median (rank floor((n-1)/2) ascending) of |q.k|/sqrt(d) over every score map's causally
     visible entries, and of each layer's output (the residual stream after the FFN add);
  "loss": mean cross-entropy of the unquantized model;
  "quant": [{"bits", "loss", "kl"}]: absmax quantization of the attention logits before the
     softmax (one scale per sequence and layer over all maps, or per map with --per-head;
     Q = 2^(b-1) - 1, s = max|x| / Q over the visible entries, x <- clamp(round(x/s), -Q, Q) s with
     rounding half away from zero), its mean cross-entropy, and the mean
     KL(unquantized || quantized) of the next-token distributions;
  "allocation" (batch 1): at rows R .. R+N-1, each head's attention row (softmax: the map; DIFF V1
     A1 - lambda A2; DIFF V2 A_2i - sigmoid(x W_lambda)_i A_2i+1) normalised by the sum of its
     absolute values, summed per key group (groups.json: a group name for every key position),
     averaged over heads, layers and rows.
"""
import argparse
import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import diff_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402


def causal_mask(T):
    return torch.ones(T, T, dtype=torch.bool).tril()


def quantize(logits_list, bits, per_head, mask):
    """logits_list: per map (B, T, T) tensors of one layer; returns the quantized copies."""
    Q = 2.0 ** (bits - 1) - 1
    out = [x.clone() for x in logits_list]
    B = logits_list[0].shape[0]

    def apply(group):  # group: list of indices into out, quantized with one scale per batch row
        for b in range(B):
            absmax = max(float(out[i][b][mask].abs().max()) for i in group)
            if absmax == 0:
                continue
            s = absmax / Q
            for i in group:
                x = out[i][b]
                q = torch.sign(x / s) * torch.floor((x / s).abs() + 0.5)
                q = q.clamp(-Q, Q) * s
                out[i][b] = torch.where(mask, q, x)

    if per_head:
        for i in range(len(out)):
            apply([i])
    else:
        apply(list(range(len(out))))
    return out


def masked_softmax(x, mask):
    return torch.softmax(x.masked_fill(~mask, float("-inf")), dim=-1)


def forward(cfg, p, inputs, bits=None, per_head=False, record=None):
    """Logits (B, T, V). record: dict collecting 'logits' [layer][map] |x| visible values,
    'hidden' [layer] values, 'rows' [layer] (heads, B, T, T) combined attention rows."""
    B, T = inputs.shape
    d, h, hkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    mask = causal_mask(T)
    cos, sin = ref.rope_tables(T, d, cfg.rope_theta, torch.float64)
    x = p["tok_embeddings.weight"][inputs.long()]
    for l in range(cfg.n_layers):
        pre = f"layers.{l}."
        a = pre + "attn."
        xn = ref.rms_norm(x, p[pre + "attn_norm.weight"], cfg.norm_eps)
        q = ref.apply_rope(ref.project(xn, p[a + "wq.weight"]).view(B, T, cfg.q_heads, d), cos, sin, cfg.rope_style)
        k = ref.apply_rope(ref.project(xn, p[a + "wk.weight"]).view(B, T, cfg.k_heads, d), cos, sin, cfg.rope_style)
        v = ref.project(xn, p[a + "wv.weight"]).view(B, T, hkv, cfg.v_head_dim)
        # score maps and the key component each reads
        if cfg.attention == "diff_v1":
            n_rep = h // hkv
            key_of = [2 * ((m // 2) // n_rep) + m % 2 for m in range(2 * h)]
        else:
            group = cfg.q_heads // cfg.k_heads
            key_of = [m // group for m in range(cfg.q_heads)]
        logits = [q[:, :, m] @ k[:, :, key_of[m]].transpose(1, 2) / math.sqrt(d) for m in range(cfg.q_heads)]
        if record is not None:
            record["logits"].append(torch.cat([lg[:, mask].abs().reshape(-1) for lg in logits]))
        used = quantize(logits, bits, per_head, mask) if bits else logits
        probs = [masked_softmax(lg, mask) for lg in used]
        heads, rows = [], []
        if cfg.attention == "diff_v1":
            lam = (torch.exp(torch.sum(p[a + "lambda_q1"] * p[a + "lambda_k1"]))
                   - torch.exp(torch.sum(p[a + "lambda_q2"] * p[a + "lambda_k2"])) + ref.lambda_init(l))
            gain = p[a + "head_norm.weight"] if cfg.head_norm_gain else None
            for i in range(h):
                w = probs[2 * i] - lam * probs[2 * i + 1]
                rows.append(w)
                o = w @ v[:, :, i // (h // hkv)]
                heads.append(ref.rms_norm(o, gain, cfg.norm_eps) * (1.0 - ref.lambda_init(l)))
        elif cfg.attention == "diff_v2":
            gate = torch.sigmoid(ref.project(xn, p[a + "wlambda.weight"]))  # (B, T, h)
            group = cfg.q_heads // cfg.k_heads
            for i in range(h):
                w = probs[2 * i] - gate[:, :, i:i + 1] * probs[2 * i + 1]
                rows.append(w)
                heads.append(w @ v[:, :, (2 * i) // group])
        else:
            group = cfg.q_heads // cfg.k_heads
            for m in range(h):
                rows.append(probs[m])
                heads.append(probs[m] @ v[:, :, m // group])
        x = x + ref.project(torch.cat(heads, dim=-1), p[a + "wo.weight"])
        yn = ref.rms_norm(x, p[pre + "ffn_norm.weight"], cfg.norm_eps)
        x = x + ref.project(torch.nn.functional.silu(ref.project(yn, p[pre + "ffn.w_gate.weight"]))
                            * ref.project(yn, p[pre + "ffn.w_up.weight"]), p[pre + "ffn.w_down.weight"])
        if record is not None:
            record["hidden"].append(x.abs().reshape(-1))
            record["rows"].append(torch.stack(rows))
    x = ref.rms_norm(x, p["norm.weight"], cfg.norm_eps)
    head = p["tok_embeddings.weight"] if cfg.tied_embeddings else p["output.weight"]
    return ref.project(x, head)


def summary(values):
    v = torch.sort(values.double(), descending=True).values
    n = v.numel()
    ascending = torch.flip(v, [0])
    s = {"count": n, "median": float(ascending[(n - 1) // 2])}
    for k in (1, 2, 3, 10, 100):
        s[f"top{k}"] = float(v[k - 1]) if n >= k else None
    return s


def mean_ce(logits, targets):
    V = logits.shape[-1]
    return float(torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1).long()))


def mean_kl(ref_logits, logits):
    lp = torch.log_softmax(ref_logits, dim=-1)
    lq = torch.log_softmax(logits, dim=-1)
    return float((lp.exp() * (lp - lq)).sum(-1).mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bits", type=int, nargs="*", default=[])
    ap.add_argument("--per-head", action="store_true")
    ap.add_argument("--alloc-first", type=int)
    ap.add_argument("--alloc-rows", type=int)
    ap.add_argument("--groups")
    args = ap.parse_args(argv)
    with open(args.config) as f:
        cfg = ref.config_from_dict(json.load(f))
    params, _ = safetensors_io.load_file(args.weights)
    p = {n: t.to(torch.float64) for n, t in params.items()}
    tokens, _ = safetensors_io.load_file(args.tokens)
    inputs = tokens["inputs"]
    out = {}
    with torch.no_grad():
        record = {"logits": [], "hidden": [], "rows": []}
        logits = forward(cfg, p, inputs, record=record)
        out["outliers"] = {
            "logits": summary(torch.cat(record["logits"])),
            "hidden": summary(torch.cat(record["hidden"])),
            "per_layer": [{"logits": summary(lg), "hidden": summary(hd)}
                          for lg, hd in zip(record["logits"], record["hidden"])],
        }
        if "targets" in tokens:
            targets = tokens["targets"]
            out["loss"] = mean_ce(logits, targets)
            out["quant"] = []
            for b in args.bits:
                ql = forward(cfg, p, inputs, bits=b, per_head=args.per_head)
                out["quant"].append({"bits": b, "loss": mean_ce(ql, targets), "kl": mean_kl(logits, ql)})
        if args.groups:
            with open(args.groups) as f:
                groups = json.load(f)
            names = sorted(set(groups))
            masks = {n: torch.tensor([g == n for g in groups]) for n in names}
            sums = {n: 0.0 for n in names}
            count = 0
            for rows in record["rows"]:  # (heads, B, T, T)
                for hh in range(rows.shape[0]):
                    for r in range(args.alloc_first, args.alloc_first + args.alloc_rows):
                        w = rows[hh, 0, r, :len(groups)].abs()
                        total = float(w.sum())
                        for n in names:
                            sums[n] += float(w[masks[n]].sum()) / total
                        count += 1
            out["allocation"] = {n: sums[n] / count for n in names}
    with open(args.out, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
