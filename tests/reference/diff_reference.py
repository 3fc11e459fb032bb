"""Independent PyTorch reference of the difftx models (DIFF V1, DIFF V2, softmax baseline).

Written from the equations of the project reference diff-transformer.md (sections 1-2), not
from the C++ code. Plain and explicit: full T x T attention matrices, autograd for gradients.

    /usr/bin/python3 tests/reference/diff_reference.py --config cfg.json --weights w.safetensors \
        --tokens tokens.safetensors --out out.safetensors [--dtype float32|float64]

Writes "logits" (B, T, V), "loss" (1,) (mean cross-entropy over all B*T targets) and
"grad.<name>" for every parameter, all in the computation dtype.
"""
import argparse
import json
import math
import os
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


class ReferenceError(Exception):
    pass


# ----------------------------------------------------------------------------- configuration

@dataclass
class Config:
    vocab_size: int
    d_model: int
    n_layers: int
    attention: str          # diff_v1 | diff_v2 | softmax
    n_heads: int            # h (paper convention)
    n_kv_heads: int         # h_kv
    head_dim: int           # d
    ffn_dim: int            # F
    rope_theta: float = 10000.0
    rope_style: str = "interleaved"  # interleaved (GPT-J pairs) | half_split (NeoX)
    norm_eps: float = 1e-5
    lambda_init_std: float = 0.1
    head_norm_gain: bool = True
    tied_embeddings: bool = True
    max_seq_len: int = 0
    init_std: float = 0.02

    @property
    def n_rep(self):
        return self.n_heads // self.n_kv_heads

    @property
    def q_heads(self):  # d-sized query components
        return self.n_heads if self.attention == "softmax" else 2 * self.n_heads

    @property
    def k_heads(self):  # d-sized key components
        return 2 * self.n_kv_heads if self.attention == "diff_v1" else self.n_kv_heads

    @property
    def v_head_dim(self):
        return 2 * self.head_dim if self.attention == "diff_v1" else self.head_dim


def config_from_dict(j):
    if "model" in j and isinstance(j["model"], dict):
        j = j["model"]
    required = ["vocab_size", "d_model", "n_layers", "attention", "n_heads", "max_seq_len"]
    for key in required:
        if key not in j:
            raise ReferenceError(f"config: missing field '{key}'")
    attention = j["attention"]
    if attention not in ("diff_v1", "diff_v2", "softmax"):
        raise ReferenceError(f"config: unknown attention '{attention}'")
    h = int(j["n_heads"])
    per_head = 2 * h if attention == "diff_v1" else h
    E = int(j["d_model"])
    ffn_default = ((8 * E + 2) // 3 + 63) // 64 * 64
    cfg = Config(
        vocab_size=int(j["vocab_size"]), d_model=E, n_layers=int(j["n_layers"]),
        attention=attention, n_heads=h, n_kv_heads=int(j.get("n_kv_heads", h)),
        head_dim=int(j.get("head_dim", E // per_head)), ffn_dim=int(j.get("ffn_dim", ffn_default)),
        rope_theta=float(j.get("rope_theta", 10000.0)),
        rope_style=j.get("rope_style", "interleaved"), norm_eps=float(j.get("norm_eps", 1e-5)),
        lambda_init_std=float(j.get("lambda_init_std", 0.1)),
        head_norm_gain=bool(j.get("head_norm_gain", True)),
        tied_embeddings=bool(j.get("tied_embeddings", True)),
        max_seq_len=int(j["max_seq_len"]), init_std=float(j.get("init_std", 0.02)))
    if cfg.rope_style not in ("interleaved", "half_split"):
        raise ReferenceError(f"config: unknown rope_style '{cfg.rope_style}'")
    if cfg.n_heads % cfg.n_kv_heads != 0:
        raise ReferenceError("config: n_kv_heads must divide n_heads")
    if cfg.head_dim % 2 != 0:
        raise ReferenceError("config: head_dim must be even")
    return cfg


def param_specs(cfg):
    """[(name, shape)] in the order of include/difftx/model/params.h (torch Linear layout)."""
    E, V, Fd, d, h = cfg.d_model, cfg.vocab_size, cfg.ffn_dim, cfg.head_dim, cfg.n_heads
    specs = [("tok_embeddings.weight", (V, E))]
    for l in range(cfg.n_layers):
        p = f"layers.{l}."
        specs.append((p + "attn_norm.weight", (E,)))
        specs.append((p + "attn.wq.weight", (cfg.q_heads * d, E)))
        specs.append((p + "attn.wk.weight", (cfg.k_heads * d, E)))
        specs.append((p + "attn.wv.weight", (cfg.n_kv_heads * cfg.v_head_dim, E)))
        specs.append((p + "attn.wo.weight", (E, h * cfg.v_head_dim)))
        if cfg.attention == "diff_v1":
            for s in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"):
                specs.append((p + "attn." + s, (d,)))
            if cfg.head_norm_gain:
                specs.append((p + "attn.head_norm.weight", (2 * d,)))
        if cfg.attention == "diff_v2":
            specs.append((p + "attn.wlambda.weight", (h, E)))
        specs.append((p + "ffn_norm.weight", (E,)))
        specs.append((p + "ffn.w_gate.weight", (Fd, E)))
        specs.append((p + "ffn.w_up.weight", (Fd, E)))
        specs.append((p + "ffn.w_down.weight", (E, Fd)))
    specs.append(("norm.weight", (E,)))
    if not cfg.tied_embeddings:
        specs.append(("output.weight", (V, E)))
    return specs


def random_params(cfg, seed, dtype=torch.float64, std=None):
    """Random parameters for tests: gains near 1, lambdas Normal(0, lambda_init_std)."""
    g = torch.Generator().manual_seed(seed)
    std = cfg.init_std if std is None else std
    params = {}
    for name, shape in param_specs(cfg):
        if name.endswith("norm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
        elif ".lambda_" in name:
            t = cfg.lambda_init_std * torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            t = std * torch.randn(shape, generator=g, dtype=torch.float64)
        params[name] = t.to(dtype)
    return params


# ----------------------------------------------------------------------------- building blocks

def lambda_init(layer):
    """DIFF V1: lambda_init = 0.8 - 0.6 exp(-0.3 l), l the 0-based layer index."""
    return 0.8 - 0.6 * math.exp(-0.3 * layer)


def rms_norm(x, weight, eps):
    """x / sqrt(mean(x^2) + eps) * weight over the last dimension (weight None: no gain)."""
    y = x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return y if weight is None else y * weight


def rope_tables(T, d, theta, dtype):
    """cos, sin of angle[t, i] = t * theta^(-2i/d), t = 0..T-1, i = 0..d/2-1; (T, d/2)."""
    i = torch.arange(d // 2, dtype=torch.float64)
    inv_freq = theta ** (-2.0 * i / d)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return torch.cos(angles).to(dtype), torch.sin(angles).to(dtype)


def apply_rope(x, cos, sin, style):
    """Rotates every d-sized component of x (B, T, H, d) by its position."""
    d = x.shape[-1]
    c = cos[None, :, None, :]  # (1, T, 1, d/2)
    s = sin[None, :, None, :]
    if style == "interleaved":  # pairs (2i, 2i+1)
        a, b = x[..., 0::2], x[..., 1::2]
        ra, rb = a * c - b * s, a * s + b * c
        return torch.stack([ra, rb], dim=-1).reshape(x.shape)
    if style == "half_split":   # pairs (i, i + d/2)
        a, b = x[..., : d // 2], x[..., d // 2:]
        return torch.cat([a * c - b * s, a * s + b * c], dim=-1)
    raise ReferenceError(f"unknown rope style {style}")


def causal_softmax(q, k):
    """A = softmax(q k^T / sqrt(d) + causal mask) for q, k (B, T, d): (B, T, T)."""
    T, d = q.shape[1], q.shape[2]
    scores = q @ k.transpose(1, 2) / math.sqrt(d)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)


def project(x, w):
    """Linear layer in torch layout: x (..., in) @ w (out, in)^T."""
    return x @ w.t()


# ----------------------------------------------------------------------------- attention

def diff_v1_attention(cfg, p, l, xn, cos, sin, trace=None):
    B, T, _ = xn.shape
    h, hkv, d = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    pre = f"layers.{l}.attn."
    q = apply_rope(project(xn, p[pre + "wq.weight"]).view(B, T, 2 * h, d), cos, sin, cfg.rope_style)
    k = apply_rope(project(xn, p[pre + "wk.weight"]).view(B, T, 2 * hkv, d), cos, sin, cfg.rope_style)
    v = project(xn, p[pre + "wv.weight"]).view(B, T, hkv, 2 * d)
    lam_init = lambda_init(l)
    lam = (torch.exp(torch.sum(p[pre + "lambda_q1"] * p[pre + "lambda_k1"]))
           - torch.exp(torch.sum(p[pre + "lambda_q2"] * p[pre + "lambda_k2"])) + lam_init)
    gain = p[pre + "head_norm.weight"] if cfg.head_norm_gain else None
    heads, a1s, a2s, raw = [], [], [], []
    for i in range(h):
        j = i // cfg.n_rep
        A1 = causal_softmax(q[:, :, 2 * i], k[:, :, 2 * j])       # (B, T, T)
        A2 = causal_softmax(q[:, :, 2 * i + 1], k[:, :, 2 * j + 1])
        o = (A1 - lam * A2) @ v[:, :, j]                          # (B, T, 2d)
        raw.append(o)
        heads.append(rms_norm(o, gain, cfg.norm_eps) * (1.0 - lam_init))
        a1s.append(A1)
        a2s.append(A2)
    out = torch.cat(heads, dim=-1)                                # (B, T, h*2d)
    if trace is not None:
        trace.setdefault("lambda", []).append(lam.detach())
        trace.setdefault("A1", []).append(torch.stack(a1s, 1).detach())   # (B, h, T, T)
        trace.setdefault("A2", []).append(torch.stack(a2s, 1).detach())
        trace.setdefault("head_raw", []).append(torch.stack(raw, 2).detach())    # (B, T, h, 2d)
        trace.setdefault("head_out", []).append(torch.stack(heads, 2).detach())  # (B, T, h, 2d)
    return project(out, p[pre + "wo.weight"])


def diff_v2_attention(cfg, p, l, xn, cos, sin, trace=None):
    B, T, _ = xn.shape
    h, hkv, d = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    pre = f"layers.{l}.attn."
    q = apply_rope(project(xn, p[pre + "wq.weight"]).view(B, T, 2 * h, d), cos, sin, cfg.rope_style)
    k = apply_rope(project(xn, p[pre + "wk.weight"]).view(B, T, hkv, d), cos, sin, cfg.rope_style)
    v = project(xn, p[pre + "wv.weight"]).view(B, T, hkv, d)
    group = (2 * h) // hkv  # query heads per kv head
    a = []
    for m in range(2 * h):
        A = causal_softmax(q[:, :, m], k[:, :, m // group])
        a.append(A @ v[:, :, m // group])                         # (B, T, d)
    lam = torch.sigmoid(project(xn, p[pre + "wlambda.weight"]))   # (B, T, h)
    heads = [a[2 * i] - lam[:, :, i:i + 1] * a[2 * i + 1] for i in range(h)]
    if trace is not None:
        trace.setdefault("v2_lambda", []).append(lam.detach())
        trace.setdefault("head_out", []).append(torch.stack(heads, 2).detach())  # (B, T, h, d)
    return project(torch.cat(heads, dim=-1), p[pre + "wo.weight"])


def softmax_attention(cfg, p, l, xn, cos, sin, trace=None):
    B, T, _ = xn.shape
    h, hkv, d = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    pre = f"layers.{l}.attn."
    q = apply_rope(project(xn, p[pre + "wq.weight"]).view(B, T, h, d), cos, sin, cfg.rope_style)
    k = apply_rope(project(xn, p[pre + "wk.weight"]).view(B, T, hkv, d), cos, sin, cfg.rope_style)
    v = project(xn, p[pre + "wv.weight"]).view(B, T, hkv, d)
    heads = []
    for m in range(h):
        j = m // cfg.n_rep
        heads.append(causal_softmax(q[:, :, m], k[:, :, j]) @ v[:, :, j])
    if trace is not None:
        trace.setdefault("head_out", []).append(torch.stack(heads, 2).detach())
    return project(torch.cat(heads, dim=-1), p[pre + "wo.weight"])


ATTENTION = {"diff_v1": diff_v1_attention, "diff_v2": diff_v2_attention,
             "softmax": softmax_attention}


# ----------------------------------------------------------------------------- model

def forward(cfg, p, inputs, trace=None):
    """Logits (B, T, V) for int tokens (B, T); p maps parameter names to tensors of one dtype."""
    B, T = inputs.shape
    dtype = p["tok_embeddings.weight"].dtype
    cos, sin = rope_tables(T, cfg.head_dim, cfg.rope_theta, dtype)
    x = p["tok_embeddings.weight"][inputs.long()]                # (B, T, E)
    attention = ATTENTION[cfg.attention]
    for l in range(cfg.n_layers):
        pre = f"layers.{l}."
        xn = rms_norm(x, p[pre + "attn_norm.weight"], cfg.norm_eps)
        x = x + attention(cfg, p, l, xn, cos, sin, trace)
        yn = rms_norm(x, p[pre + "ffn_norm.weight"], cfg.norm_eps)
        ffn = project(F.silu(project(yn, p[pre + "ffn.w_gate.weight"]))
                      * project(yn, p[pre + "ffn.w_up.weight"]), p[pre + "ffn.w_down.weight"])
        x = x + ffn
        if trace is not None:
            trace.setdefault("hidden", []).append(x.detach())
    x = rms_norm(x, p["norm.weight"], cfg.norm_eps)
    head = p["tok_embeddings.weight"] if cfg.tied_embeddings else p["output.weight"]
    return project(x, head)


def mean_cross_entropy(logits, targets):
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1).long(), reduction="mean")


def check_inputs(cfg, params, inputs, targets=None):
    specs = param_specs(cfg)
    expected = {name for name, _ in specs}
    missing = [n for n, _ in specs if n not in params]
    extra = sorted(set(params) - expected)
    if missing:
        raise ReferenceError(f"weights: missing parameters {missing[:5]}")
    if extra:
        raise ReferenceError(f"weights: unexpected parameters {extra[:5]}")
    for name, shape in specs:
        if tuple(params[name].shape) != tuple(shape):
            raise ReferenceError(f"weights: '{name}' has shape {tuple(params[name].shape)}, "
                                 f"expected {tuple(shape)}")
    for name, t in (("inputs", inputs), ("targets", targets)):
        if t is None:
            continue
        if t.dim() != 2:
            raise ReferenceError(f"tokens: '{name}' must be (B, T), got {tuple(t.shape)}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= cfg.vocab_size):
            raise ReferenceError(f"tokens: '{name}' has ids outside [0, {cfg.vocab_size})")
    if targets is not None and tuple(targets.shape) != tuple(inputs.shape):
        raise ReferenceError("tokens: 'inputs' and 'targets' shapes differ")
    if cfg.max_seq_len and inputs.shape[1] > cfg.max_seq_len:
        raise ReferenceError(f"tokens: T = {inputs.shape[1]} exceeds max_seq_len {cfg.max_seq_len}")


def run(cfg, params, inputs, targets, dtype):
    """Returns logits, loss, {name: grad} with every parameter cast to `dtype`."""
    check_inputs(cfg, params, inputs, targets)
    leaves = {n: params[n].detach().to(dtype).clone().requires_grad_(True)
              for n, _ in param_specs(cfg)}
    logits = forward(cfg, leaves, inputs)
    loss = mean_cross_entropy(logits, targets)
    loss.backward()
    grads = {}
    for name, _ in param_specs(cfg):
        g = leaves[name].grad
        grads[name] = torch.zeros_like(leaves[name]) if g is None else g
    return logits.detach(), loss.detach(), grads


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="ModelConfig JSON (ModelConfig::to_json)")
    ap.add_argument("--weights", required=True, help="safetensors with every parameter (f32/f64)")
    ap.add_argument("--tokens", required=True, help="safetensors with int32 'inputs', 'targets' (B, T)")
    ap.add_argument("--out", required=True, help="output safetensors: logits, loss, grad.<name>")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = ap.parse_args(argv)
    dtype = torch.float32 if args.dtype == "float32" else torch.float64
    try:
        with open(args.config) as f:
            cfg = config_from_dict(json.load(f))
        params, _ = safetensors_io.load_file(args.weights)
        tokens, _ = safetensors_io.load_file(args.tokens)
        for key in ("inputs", "targets"):
            if key not in tokens:
                raise ReferenceError(f"{args.tokens}: missing tensor '{key}'")
        logits, loss, grads = run(cfg, params, tokens["inputs"], tokens["targets"], dtype)
    except (ReferenceError, safetensors_io.SafetensorsError, OSError, ValueError) as e:
        print(f"diff_reference: error: {e}", file=sys.stderr)
        return 1
    out = [("logits", logits), ("loss", loss.reshape(1))]
    out += [("grad." + name, grads[name]) for name, _ in param_specs(cfg)]
    safetensors_io.save_file(args.out, out, {"attention": cfg.attention, "dtype": args.dtype})
    return 0


if __name__ == "__main__":
    sys.exit(main())
