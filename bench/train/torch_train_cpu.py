#!/usr/bin/python3
"""PyTorch side of the CPU training benchmark: the difftx model of a run config in PyTorch (fp32, CPU).

The same model as difftx (DIFF V1, DIFF V2 or the softmax baseline, read from the same run config
JSON), the same parameter names and shapes, the same batch and sequence, AdamW with the config's
hyper-parameters (decay on matrices only, global-norm clipping, the config's lr schedule), the
same thread count, timed the same way as bench/train/bench_train_cpu.cpp: W warm-up steps, then
N timed optimizer steps (zero_grad + grad_accum x forward/backward + clip + AdamW step + reading
the loss); tokens/s from the median step time and overall. Written for speed in PyTorch 1.13
eager: heads batched in one matmul, causal mask added once, no Python loop over heads
(no torch.compile or scaled_dot_product_attention in 1.13).

    /usr/bin/python3 bench/train/torch_train_cpu.py [--config configs/tiny.json] [--steps 20]
        [--warmup 3] [--threads K] [--expect-params N] [--json FILE]

Prints a summary and one JSON line (also appended to --json FILE). --expect-params: fail unless
the parameter count equals N (the `difftx model info` total). When tests/reference/diff_reference.py
is present its parameter list (names and shapes, written independently from the spec) is
compared with this model's too.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class BenchError(Exception):
    pass


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=os.path.join(REPO, "configs", "tiny.json"),
                    help="run config JSON (default configs/tiny.json)")
    ap.add_argument("--steps", type=int, default=20, help="timed optimizer steps (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--threads", type=int, default=0,
                    help="intra-op (OpenMP) and OpenBLAS threads (default 0: every core)")
    ap.add_argument("--seed", type=int, default=1234, help="seed of the random token batches")
    ap.add_argument("--expect-params", type=int, default=None,
                    help="fail unless the parameter count equals this (difftx model info total)")
    ap.add_argument("--json", default=None, help="also append the result line to this file")
    ap.add_argument("--system-malloc", action="store_true",
                    help="keep glibc's malloc defaults (see tune_malloc)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 0:
        ap.error("--steps must be >= 1, --warmup and --threads >= 0")
    return args


def tune_malloc():
    """Keeps large blocks in the heap instead of fresh mmap()s.

    PyTorch allocates every activation and gradient anew each step; glibc serves blocks of
    32 MiB and more (the (B*T, V) logits, their log-softmax and gradient) with mmap() whatever
    M_MMAP_THRESHOLD says, and unmaps them on free, so each step page-faults them in again: on
    this VM that made the tied output-head GEMM ~5x slower (19 vs 100 GFLOP/s). difftx reuses
    its buffers, so without this the comparison would mostly measure page faults. Same effect as
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>, or an LD_PRELOADed jemalloc/tcmalloc.
    """
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    ok = libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
    return "heap only (mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=2^31-1)" if ok else "mallopt failed: glibc defaults"


ARGS = parse_args(sys.argv[1:])
MALLOC = "glibc defaults (--system-malloc)" if ARGS.system_malloc else tune_malloc()
THREADS = ARGS.threads or len(os.sched_getaffinity(0))
# OpenBLAS (PyTorch's BLAS here, as for difftx) and OpenMP read these when they are loaded.
os.environ["OMP_NUM_THREADS"] = str(THREADS)
os.environ["OPENBLAS_NUM_THREADS"] = str(THREADS)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ----------------------------------------------------------------------------- run config

def load_run_config(path):
    """The fields of a run config this benchmark needs, defaults as in docs/config.md."""
    with open(path) as f:
        j = json.load(f)
    if not isinstance(j.get("model"), dict):
        raise BenchError(f"{path}: a run config needs a \"model\" object")
    m = j["model"]
    for key in ("vocab_size", "d_model", "n_layers", "attention", "n_heads", "max_seq_len"):
        if key not in m:
            raise BenchError(f"{path}: model.{key} is required")
    attention = m["attention"]
    if attention not in ("diff_v1", "diff_v2", "softmax"):
        raise BenchError(f"{path}: model.attention '{attention}' is not diff_v1, diff_v2 or softmax")
    E, h = int(m["d_model"]), int(m["n_heads"])
    model = {
        "vocab_size": int(m["vocab_size"]), "d_model": E, "n_layers": int(m["n_layers"]),
        "attention": attention, "n_heads": h, "n_kv_heads": int(m.get("n_kv_heads", h)),
        "head_dim": int(m.get("head_dim", E // (2 * h) if attention == "diff_v1" else E // h)),
        "ffn_dim": int(m.get("ffn_dim", ((8 * E + 2) // 3 + 63) // 64 * 64)),
        "rope_theta": float(m.get("rope_theta", 10000.0)),
        "rope_style": m.get("rope_style", "interleaved"),
        "norm_eps": float(m.get("norm_eps", 1e-5)),
        "lambda_init_std": float(m.get("lambda_init_std", 0.1)),
        "head_norm_gain": bool(m.get("head_norm_gain", True)),
        "tied_embeddings": bool(m.get("tied_embeddings", True)),
        "max_seq_len": int(m["max_seq_len"]), "init_std": float(m.get("init_std", 0.02)),
    }
    if model["n_heads"] % model["n_kv_heads"]:
        raise BenchError(f"{path}: model.n_kv_heads must divide n_heads")
    if model["rope_style"] not in ("interleaved", "half_split"):
        raise BenchError(f"{path}: model.rope_style '{model['rope_style']}' is unknown")
    data, optim = j.get("data", {}), j.get("optim", {})
    sched, train = j.get("schedule", {}), j.get("train", {})
    if "lr" not in sched:
        raise BenchError(f"{path}: schedule.lr is required")
    if "steps" not in train and "total_steps" not in sched:
        raise BenchError(f"{path}: train.steps is required")
    cfg = {
        "model": model,
        "batch_size": int(data.get("batch_size", 16)), "seq_len": int(data.get("seq_len", 128)),
        "beta1": float(optim.get("beta1", 0.9)), "beta2": float(optim.get("beta2", 0.95)),
        "eps": float(optim.get("eps", 1e-8)), "weight_decay": float(optim.get("weight_decay", 0.1)),
        "decay_embeddings": bool(optim.get("decay_embeddings", True)),
        "grad_clip": float(optim.get("grad_clip", 1.0)), "grad_accum": int(optim.get("grad_accum", 1)),
        "lr": float(sched["lr"]), "min_lr": float(sched.get("min_lr", 0.0)),
        "warmup_steps": int(sched.get("warmup_steps", 0)),
        "total_steps": int(sched.get("total_steps", train.get("steps", 0))),
        "decay": sched.get("decay", "cosine"), "seed": int(train.get("seed", 1)),
    }
    if cfg["seq_len"] > model["max_seq_len"]:
        raise BenchError(f"{path}: data.seq_len {cfg['seq_len']} exceeds model.max_seq_len")
    return cfg


def learning_rate(cfg, step):
    """include/difftx/train/schedule.h: linear warmup, then cosine/linear/constant decay."""
    lr, lo, warm, total = cfg["lr"], cfg["min_lr"], cfg["warmup_steps"], cfg["total_steps"]
    if step < warm:
        return lr * (step + 1) / warm
    if cfg["decay"] == "constant":
        return lr
    if step > total or total == warm:
        return lo
    progress = (step - warm) / (total - warm)
    if cfg["decay"] == "linear":
        return lr + (lo - lr) * progress
    return lo + (lr - lo) * (1 + math.cos(math.pi * progress)) / 2


# ----------------------------------------------------------------------------- model

def rms_norm(x, weight, eps, scale=1.0):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    if scale != 1.0:
        y = y * scale
    return y if weight is None else y * weight


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class Rope(nn.Module):
    """RoPE on (B, T, H, d) tensors; interleaved (GPT-J) or half-split (NeoX) pairs."""

    def __init__(self, T, d, theta, style):
        super().__init__()
        i = torch.arange(d // 2, dtype=torch.float64)
        angles = torch.arange(T, dtype=torch.float64)[:, None] * theta ** (-2.0 * i / d)[None, :]
        self.register_buffer("cos", torch.cos(angles).float()[None, :, None, :], persistent=False)
        self.register_buffer("sin", torch.sin(angles).float()[None, :, None, :], persistent=False)
        self.style = style

    def forward(self, x):
        T = x.shape[1]
        c, s = self.cos[:, :T], self.sin[:, :T]
        if self.style == "interleaved":
            x0, x1 = x.unflatten(-1, (-1, 2)).unbind(-1)
            return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)
        x0, x1 = x.chunk(2, dim=-1)
        return torch.cat((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1)


def causal_attention_probs(q, k, scale, mask):
    """softmax(q k^T * scale + causal mask) over the last dim; q (..., T, d), k (..., S, d)."""
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(scale)
    return torch.softmax(scores + mask, dim=-1)


class Attention(nn.Module):
    def __init__(self, m, layer, rope):
        super().__init__()
        E, h, hkv, d = m["d_model"], m["n_heads"], m["n_kv_heads"], m["head_dim"]
        self.kind, self.h, self.hkv, self.d, self.eps = m["attention"], h, hkv, d, m["norm_eps"]
        q_heads = h if self.kind == "softmax" else 2 * h
        k_heads = 2 * hkv if self.kind == "diff_v1" else hkv
        v_dim = 2 * d if self.kind == "diff_v1" else d
        self.wq = nn.Linear(E, q_heads * d, bias=False)
        self.wk = nn.Linear(E, k_heads * d, bias=False)
        self.wv = nn.Linear(E, hkv * v_dim, bias=False)
        self.wo = nn.Linear(h * v_dim, E, bias=False)
        self.rope = [rope]  # shared, not a submodule (keeps parameter names equal to difftx's)
        self.scale = 1.0 / math.sqrt(d)
        if self.kind == "diff_v1":
            self.lambda_init = 0.8 - 0.6 * math.exp(-0.3 * layer)
            for name in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"):
                setattr(self, name, nn.Parameter(torch.zeros(d)))
            self.head_norm = RMSNorm(2 * d, self.eps) if m["head_norm_gain"] else None
        if self.kind == "diff_v2":
            self.wlambda = nn.Linear(E, h, bias=False)

    def forward(self, x, mask):
        B, T, _ = x.shape
        h, hkv, d = self.h, self.hkv, self.d
        rope = self.rope[0]
        q = rope(self.wq(x).view(B, T, -1, d))
        k = rope(self.wk(x).view(B, T, -1, d))
        v = self.wv(x).view(B, T, hkv, -1).transpose(1, 2)               # (B, hkv, T, dv)
        if self.kind == "diff_v1":
            q = q.view(B, T, h, 2, d).permute(0, 2, 3, 1, 4)              # (B, h, 2, T, d)
            k = k.view(B, T, hkv, 2, d).permute(0, 2, 3, 1, 4)            # (B, hkv, 2, T, d)
            if h != hkv:
                k = k.repeat_interleave(h // hkv, dim=1)
                v = v.repeat_interleave(h // hkv, dim=1)
            # The two maps as separate batched products: slicing the (B, h, 2, T, T) probabilities
            # instead costs a zero-filled T x T buffer per slice in the backward (measured slower).
            q1, q2 = q.unbind(2)                                          # (B, h, T, d)
            k1, k2 = k.unbind(2)
            a1 = causal_attention_probs(q1, k1, self.scale, mask)         # (B, h, T, T)
            a2 = causal_attention_probs(q2, k2, self.scale, mask)
            lam = (torch.exp(torch.dot(self.lambda_q1, self.lambda_k1))
                   - torch.exp(torch.dot(self.lambda_q2, self.lambda_k2)) + self.lambda_init)
            o = torch.matmul(a1 - lam * a2, v)                            # (B, h, T, 2d)
            gain = self.head_norm.weight if self.head_norm is not None else None
            o = rms_norm(o, gain, self.eps, 1.0 - self.lambda_init)
        else:
            q = q.transpose(1, 2)                                         # (B, Hq, T, d)
            k = k.transpose(1, 2)                                         # (B, hkv, T, d)
            group = q.shape[1] // hkv
            if group != 1:
                k = k.repeat_interleave(group, dim=1)
                v = v.repeat_interleave(group, dim=1)
            o = torch.matmul(causal_attention_probs(q, k, self.scale, mask), v)  # (B, Hq, T, d)
            if self.kind == "diff_v2":
                o = o.view(B, h, 2, T, d)
                lam = torch.sigmoid(self.wlambda(x)).transpose(1, 2).unsqueeze(-1)  # (B, h, T, 1)
                o = o[:, :, 0] - lam * o[:, :, 1]                         # (B, h, T, d)
        return self.wo(o.transpose(1, 2).reshape(B, T, -1))


class FFN(nn.Module):
    def __init__(self, E, Fd):
        super().__init__()
        self.w_gate = nn.Linear(E, Fd, bias=False)
        self.w_up = nn.Linear(E, Fd, bias=False)
        self.w_down = nn.Linear(Fd, E, bias=False)

    def forward(self, x):
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class Block(nn.Module):
    def __init__(self, m, layer, rope):
        super().__init__()
        self.attn_norm = RMSNorm(m["d_model"], m["norm_eps"])
        self.attn = Attention(m, layer, rope)
        self.ffn_norm = RMSNorm(m["d_model"], m["norm_eps"])
        self.ffn = FFN(m["d_model"], m["ffn_dim"])

    def forward(self, x, mask):
        x = x + self.attn(self.attn_norm(x), mask)
        return x + self.ffn(self.ffn_norm(x))


class Model(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m
        self.rope = Rope(m["max_seq_len"], m["head_dim"], m["rope_theta"], m["rope_style"])
        self.tok_embeddings = nn.Embedding(m["vocab_size"], m["d_model"])
        self.layers = nn.ModuleList(Block(m, l, self.rope) for l in range(m["n_layers"]))
        self.norm = RMSNorm(m["d_model"], m["norm_eps"])
        if not m["tied_embeddings"]:
            self.output = nn.Linear(m["d_model"], m["vocab_size"], bias=False)
        T = m["max_seq_len"]
        mask = torch.full((T, T), float("-inf")).triu(1)
        self.register_buffer("mask", mask, persistent=False)

    def init_weights(self, seed):
        """difftx's ParamInit (params.h): Normal(0, init_std), residual outputs init_std/sqrt(2L)."""
        m = self.m
        g = torch.Generator().manual_seed(seed)
        residual_std = m["init_std"] / math.sqrt(2 * m["n_layers"])
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                elif ".lambda_" in name:
                    p.normal_(0.0, m["lambda_init_std"], generator=g)
                elif name.endswith("wo.weight") or name.endswith("w_down.weight"):
                    p.normal_(0.0, residual_std, generator=g)
                else:
                    p.normal_(0.0, m["init_std"], generator=g)

    def forward(self, inputs, targets):
        T = inputs.shape[1]
        mask = self.mask[:T, :T]
        x = self.tok_embeddings(inputs)
        for block in self.layers:
            x = block(x, mask)
        x = self.norm(x)
        head = self.output.weight if not self.m["tied_embeddings"] else self.tok_embeddings.weight
        logits = F.linear(x, head)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def check_against_reference(model, config_path):
    """Names and shapes against tests/reference/diff_reference.py's independent list."""
    ref_dir = os.path.join(REPO, "tests", "reference")
    if not os.path.exists(os.path.join(ref_dir, "diff_reference.py")):
        return "skipped (tests/reference/diff_reference.py not found)"
    sys.path.insert(0, ref_dir)
    import diff_reference  # noqa: E402
    with open(config_path) as f:
        ref_cfg = diff_reference.config_from_dict(json.load(f))
    ours = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    theirs = [(n, tuple(s)) for n, s in diff_reference.param_specs(ref_cfg)]
    if sorted(ours) != sorted(theirs):
        diff = sorted(set(ours) ^ set(theirs))[:6]
        raise BenchError(f"parameter names/shapes differ from diff_reference.param_specs: {diff}")
    return f"{len(ours)} tensors, names and shapes equal to diff_reference.param_specs"


# ----------------------------------------------------------------------------- benchmark

def main():
    args = ARGS
    torch.set_num_threads(THREADS)
    cfg = load_run_config(args.config)
    m = cfg["model"]
    B, T, accum = cfg["batch_size"], cfg["seq_len"], cfg["grad_accum"]
    tokens_per_step = B * T * accum

    model = Model(m)
    model.init_weights(cfg["seed"])
    n_params = sum(p.numel() for p in model.parameters())
    ref_note = check_against_reference(model, args.config)
    if args.expect_params is not None and n_params != args.expect_params:
        raise BenchError(f"PyTorch model has {n_params} parameters, difftx model info says "
                         f"{args.expect_params}: the two models differ")

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        exempt = name == "tok_embeddings.weight" and not cfg["decay_embeddings"]
        (decay if p.dim() == 2 and not exempt else no_decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"], foreach=True)
    params = list(model.parameters())

    g = torch.Generator().manual_seed(args.seed)
    batches = []
    for _ in range(4):
        seq = torch.randint(0, m["vocab_size"], (B, T + 1), generator=g)
        batches.append((seq[:, :-1].contiguous(), seq[:, 1:].contiguous()))

    print(f"torch_train_cpu: {args.config} ({m['attention']}, {n_params} parameters), "
          f"{accum} x {B} x {T} tokens per step, {THREADS} threads, {args.warmup} warm-up + "
          f"{args.steps} timed steps; torch {torch.__version__}", file=sys.stderr)
    print(f"torch_train_cpu: parameter check: {ref_note}", file=sys.stderr)
    print(f"torch_train_cpu: malloc: {MALLOC}", file=sys.stderr)

    state = {"step": 0, "micro": 0}

    def one_step():
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(accum):
            inputs, targets = batches[state["micro"] % len(batches)]
            state["micro"] += 1
            loss = model(inputs, targets)
            (loss / accum if accum > 1 else loss).backward()
            total += loss.item() / accum
        if cfg["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
        lr = learning_rate(cfg, state["step"])
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        state["step"] += 1
        if not math.isfinite(total):
            raise BenchError(f"loss is {total} at step {state['step']}")
        return total

    first_loss = None
    for _ in range(args.warmup):
        loss = one_step()
        first_loss = loss if first_loss is None else first_loss
    step_s = []
    t0 = time.perf_counter()
    for _ in range(args.steps):
        s0 = time.perf_counter()
        last_loss = one_step()
        step_s.append(time.perf_counter() - s0)
        first_loss = last_loss if first_loss is None else first_loss
    total_s = time.perf_counter() - t0
    med = statistics.median(step_s)

    print(f"pytorch cpu f32  {m['attention']:<8} params {n_params}  {tokens_per_step} tokens/step  "
          f"{THREADS} threads")
    print(f"  step ms: median {med * 1e3:.2f}  min {min(step_s) * 1e3:.2f}  "
          f"max {max(step_s) * 1e3:.2f}  mean {total_s / args.steps * 1e3:.2f}")
    print(f"  tokens/s: {tokens_per_step / med:.0f} (median step)  "
          f"{tokens_per_step * args.steps / total_s:.0f} (overall)")
    print(f"  loss: {first_loss:.4f} (first) -> {last_loss:.4f} (last); "
          f"ln V = {math.log(m['vocab_size']):.4f}")
    line = json.dumps({
        "bench": "train_cpu", "side": "pytorch", "config": args.config,
        "attention": m["attention"], "params": n_params, "batch": B, "seq_len": T,
        "grad_accum": accum, "tokens_per_step": tokens_per_step, "threads": THREADS,
        "warmup": args.warmup, "steps": args.steps, "step_ms_median": med * 1e3,
        "step_ms_mean": total_s / args.steps * 1e3, "tokens_per_s_median": tokens_per_step / med,
        "tokens_per_s_overall": tokens_per_step * args.steps / total_s,
        "first_loss": first_loss, "last_loss": last_loss, "torch": torch.__version__,
        "malloc": MALLOC,
        "env": {k: os.environ.get(k, "") for k in
                ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_CORETYPE")},
    })
    print(line)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, OSError, ValueError, json.JSONDecodeError) as e:
        print(f"torch_train_cpu: error: {e}", file=sys.stderr)
        sys.exit(1)
