"""Self-checks of the PyTorch reference (diff_reference.py) against hand-derived facts.

Run: /usr/bin/python3 tests/reference/test_reference_self.py  (CTest: reference_self_check).
Prints one line per check and "N passed, M failed"; exits non-zero if any check fails.
"""
import cmath
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import diff_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402

torch.set_num_threads(1)
F64 = torch.float64


def make_cfg(attention, h, hkv, d, L=2, V=11, F=12, style="interleaved", gain=True, tied=True,
             eps=1e-5, theta=10000.0, max_seq_len=16):
    E = 2 * h * d if attention == "diff_v1" else h * d
    return ref.config_from_dict(dict(
        vocab_size=V, d_model=E, n_layers=L, attention=attention, n_heads=h, n_kv_heads=hkv,
        head_dim=d, ffn_dim=F, rope_theta=theta, rope_style=style, norm_eps=eps,
        lambda_init_std=0.1, head_norm_gain=gain, tied_embeddings=tied, max_seq_len=max_seq_len,
        init_std=0.02))


def tokens(cfg, B, T, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab_size, (B, T), generator=g, dtype=torch.int32)


def traced(cfg, p, inputs):
    trace = {}
    with torch.no_grad():
        logits = ref.forward(cfg, p, inputs, trace)
    return logits, trace


def max_diff(a, b):
    return float((a - b).abs().max())


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def rows_of_component(c, d):
    return slice(c * d, (c + 1) * d)


def perturbed(p, name, rows, seed, scale=0.5):
    q = dict(p)
    w = p[name].clone()
    g = torch.Generator().manual_seed(seed)
    w[rows] += scale * torch.randn(w[rows].shape, generator=g, dtype=w.dtype)
    q[name] = w
    return q


# ----------------------------------------------------------------------------- (a) GQA pairing

def test_diff_v1_gqa_pairing():
    """h=4, h_kv=2: k component 2j+1 (K2 of group j) feeds only A2 of heads i with i // 2 == j."""
    cfg = make_cfg("diff_v1", h=4, hkv=2, d=4, L=1)
    p = ref.random_params(cfg, seed=1, dtype=F64, std=0.3)
    x = tokens(cfg, 2, 6, seed=2)
    _, base = traced(cfg, p, x)
    d = cfg.head_dim
    for j in range(cfg.n_kv_heads):
        for comp, changed_map in ((2 * j + 1, "A2"), (2 * j, "A1")):
            q = perturbed(p, "layers.0.attn.wk.weight", rows_of_component(comp, d), seed=10 + comp)
            _, tr = traced(cfg, q, x)
            other_map = "A1" if changed_map == "A2" else "A2"
            check(torch.equal(tr[other_map][0], base[other_map][0]),
                  f"k component {comp} changed {other_map}")
            for i in range(cfg.n_heads):
                in_group = i // cfg.n_rep == j
                diff_map = max_diff(tr[changed_map][0][:, i], base[changed_map][0][:, i])
                diff_out = max_diff(tr["head_raw"][0][:, :, i], base["head_raw"][0][:, :, i])
                if in_group:
                    check(diff_map > 1e-4 and diff_out > 1e-6,
                          f"k component {comp} did not change {changed_map} of head {i}")
                else:
                    check(diff_map == 0 and diff_out == 0,
                          f"k component {comp} changed head {i} of another group")
    # V of group j feeds exactly the heads of group j.
    for j in range(cfg.n_kv_heads):
        q = perturbed(p, "layers.0.attn.wv.weight", slice(j * 2 * d, (j + 1) * 2 * d), seed=30 + j)
        _, tr = traced(cfg, q, x)
        for i in range(cfg.n_heads):
            diff_out = max_diff(tr["head_raw"][0][:, :, i], base["head_raw"][0][:, :, i])
            check((diff_out > 1e-6) == (i // cfg.n_rep == j), f"v group {j} vs head {i}: {diff_out}")
    # With lambda = 0, A2 has no effect at all: K2 perturbations leave the logits unchanged,
    # K1 perturbations do not.
    z = dict(p)
    e0 = torch.zeros(d, dtype=F64)
    e0[0] = 1.0
    z["layers.0.attn.lambda_q1"] = torch.zeros(d, dtype=F64)
    z["layers.0.attn.lambda_k1"] = torch.zeros(d, dtype=F64)
    root = math.sqrt(math.log(1.0 + ref.lambda_init(0)))  # exp(lq2.lk2) = 1 + lambda_init
    z["layers.0.attn.lambda_q2"] = root * e0
    z["layers.0.attn.lambda_k2"] = root * e0
    logits0, tr0 = traced(cfg, z, x)
    check(abs(float(tr0["lambda"][0])) < 1e-15, f"lambda not zero: {float(tr0['lambda'][0])}")
    for j in range(cfg.n_kv_heads):
        logits2, _ = traced(cfg, perturbed(z, "layers.0.attn.wk.weight",
                                           rows_of_component(2 * j + 1, d), seed=50), x)
        check(max_diff(logits2, logits0) < 1e-12, "K2 changed the output with lambda = 0")
        logits1, _ = traced(cfg, perturbed(z, "layers.0.attn.wk.weight",
                                           rows_of_component(2 * j, d), seed=50), x)
        check(max_diff(logits1, logits0) > 1e-6, "K1 did not change the output")


def test_diff_v2_pairing_and_gqa():
    """V2, h=4 (8 query heads), h_kv=2: query head m uses kv head m // 4; out_i pairs 2i, 2i+1."""
    cfg = make_cfg("diff_v2", h=4, hkv=2, d=4, L=1)
    p = ref.random_params(cfg, seed=3, dtype=F64, std=0.3)
    x = tokens(cfg, 2, 6, seed=4)
    _, base = traced(cfg, p, x)
    d = cfg.head_dim
    for m in range(2 * cfg.n_heads):
        _, tr = traced(cfg, perturbed(p, "layers.0.attn.wq.weight", rows_of_component(m, d), 60 + m), x)
        for i in range(cfg.n_heads):
            diff = max_diff(tr["head_out"][0][:, :, i], base["head_out"][0][:, :, i])
            check((diff > 1e-6) == (i == m // 2), f"q head {m} vs output head {i}: {diff}")
    group = 2 * cfg.n_heads // cfg.n_kv_heads
    for j in range(cfg.n_kv_heads):
        _, tr = traced(cfg, perturbed(p, "layers.0.attn.wk.weight", rows_of_component(j, d), 70 + j), x)
        for i in range(cfg.n_heads):
            diff = max_diff(tr["head_out"][0][:, :, i], base["head_out"][0][:, :, i])
            check((diff > 1e-6) == ((2 * i) // group == j), f"kv head {j} vs output head {i}")
    for i in range(cfg.n_heads):
        _, tr = traced(cfg, perturbed(p, "layers.0.attn.wlambda.weight", slice(i, i + 1), 80 + i), x)
        for i2 in range(cfg.n_heads):
            diff = max_diff(tr["head_out"][0][:, :, i2], base["head_out"][0][:, :, i2])
            check((diff > 1e-8) == (i2 == i), f"wlambda row {i} vs head {i2}")
        # out_i = a[2i] - sigmoid(.)[i] a[2i+1]: with lambda_i -> lambda_i' the change is linear.
        lam0 = base["v2_lambda"][0][:, :, i]
        lam1 = tr["v2_lambda"][0][:, :, i]
        check(max_diff(lam0, lam1) > 1e-6, "wlambda did not change lambda")


def test_softmax_gqa():
    cfg = make_cfg("softmax", h=4, hkv=2, d=4, L=1)
    p = ref.random_params(cfg, seed=5, dtype=F64, std=0.3)
    x = tokens(cfg, 2, 6, seed=6)
    _, base = traced(cfg, p, x)
    for j in range(cfg.n_kv_heads):
        _, tr = traced(cfg, perturbed(p, "layers.0.attn.wk.weight",
                                      rows_of_component(j, cfg.head_dim), 90 + j), x)
        for m in range(cfg.n_heads):
            diff = max_diff(tr["head_out"][0][:, :, m], base["head_out"][0][:, :, m])
            check((diff > 1e-6) == (m // cfg.n_rep == j), f"kv head {j} vs head {m}")


# ----------------------------------------------------------------------------- (b) lambda_init

def test_lambda_init_uses_zero_based_layer():
    check(abs(ref.lambda_init(0) - 0.2) < 1e-15, "lambda_init(0) != 0.2")
    check(abs(ref.lambda_init(1) - 0.35550906759096926) < 1e-15, "lambda_init(1)")
    check(abs(ref.lambda_init(2) - 0.47071301834358416) < 1e-15, "lambda_init(2)")
    # In the model: zero lambda vectors give lambda = lambda_init(l) per layer, and with no gain
    # and a tiny eps each head leaves the norm with RMS exactly 1 - lambda_init(l).
    cfg = make_cfg("diff_v1", h=2, hkv=2, d=4, L=3, gain=False, eps=1e-14)
    p = ref.random_params(cfg, seed=7, dtype=F64, std=0.3)
    for l in range(cfg.n_layers):
        for s in ("lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"):
            p[f"layers.{l}.attn.{s}"] = torch.zeros(cfg.head_dim, dtype=F64)
    _, tr = traced(cfg, p, tokens(cfg, 2, 5, seed=8))
    expected = [0.2, 0.35550906759096926, 0.47071301834358416]
    for l in range(cfg.n_layers):
        check(abs(float(tr["lambda"][l]) - expected[l]) < 1e-14, f"layer {l}: lambda")
        rms = tr["head_out"][l].pow(2).mean(-1).sqrt()  # (B, T, h)
        check(max_diff(rms, torch.full_like(rms, 1.0 - expected[l])) < 1e-9,
              f"layer {l}: head RMS {float(rms.mean())} != {1 - expected[l]}")


def test_head_norm_uses_norm_eps_and_gain():
    cfg = make_cfg("diff_v1", h=2, hkv=1, d=4, L=2, eps=0.3)
    p = ref.random_params(cfg, seed=9, dtype=F64, std=0.3)
    _, tr = traced(cfg, p, tokens(cfg, 2, 5, seed=10))
    for l in range(cfg.n_layers):
        raw = tr["head_raw"][l]
        gain = p[f"layers.{l}.attn.head_norm.weight"]
        want = raw / torch.sqrt(raw.pow(2).mean(-1, keepdim=True) + 0.3) * gain * (1 - ref.lambda_init(l))
        check(max_diff(tr["head_out"][l], want) < 1e-14, f"layer {l}: per-head norm")


# ----------------------------------------------------------------------------- (c) gradcheck

GRADCHECK_CONFIGS = [
    ("diff_v1 gqa gain", dict(attention="diff_v1", h=2, hkv=1, d=2)),
    ("diff_v1 mha nogain half_split untied",
     dict(attention="diff_v1", h=2, hkv=2, d=2, gain=False, style="half_split", tied=False)),
    ("diff_v2 gqa", dict(attention="diff_v2", h=2, hkv=1, d=4)),
    ("softmax gqa half_split", dict(attention="softmax", h=2, hkv=1, d=4, style="half_split")),
]


def test_gradcheck():
    for label, kw in GRADCHECK_CONFIGS:
        cfg = make_cfg(V=7, F=8, L=2, **kw)
        p = ref.random_params(cfg, seed=11, dtype=F64, std=0.5)
        x, y = tokens(cfg, 2, 4, seed=12), tokens(cfg, 2, 4, seed=13)
        names = [n for n, _ in ref.param_specs(cfg)]
        leaves = tuple(p[n].clone().requires_grad_(True) for n in names)

        def loss(*ts):
            return ref.mean_cross_entropy(ref.forward(cfg, dict(zip(names, ts)), x), y)

        ok = torch.autograd.gradcheck(loss, leaves, eps=1e-6, atol=1e-7, rtol=1e-5,
                                      raise_exception=False)
        check(ok, f"gradcheck failed for {label}")
        # The gradients run() returns are those autograd checked.
        _, _, grads = ref.run(cfg, p, x, y, F64)
        auto = torch.autograd.grad(loss(*leaves), leaves)
        for n, g in zip(names, auto):
            check(torch.allclose(grads[n], g, rtol=0, atol=1e-15), f"{label}: run() grad {n}")


# ----------------------------------------------------------------------------- (d) RoPE styles

def test_rope_styles_are_a_row_permutation():
    for attention, h, hkv in (("diff_v1", 2, 1), ("diff_v2", 2, 2), ("softmax", 4, 2)):
        d = 8
        cfg_i = make_cfg(attention, h=h, hkv=hkv, d=d, style="interleaved", theta=100.0)
        cfg_h = make_cfg(attention, h=h, hkv=hkv, d=d, style="half_split", theta=100.0)
        p = ref.random_params(cfg_i, seed=14, dtype=F64, std=0.4)
        x = tokens(cfg_i, 2, 7, seed=15)
        # Within every d-sized component, half-split channel i holds interleaved channel 2i and
        # channel i + d/2 holds interleaved channel 2i + 1.
        perm = list(range(0, d, 2)) + list(range(1, d, 2))
        permuted = dict(p)
        for l in range(cfg_i.n_layers):
            for w in ("wq", "wk"):
                name = f"layers.{l}.attn.{w}.weight"
                W = p[name]
                comps = W.shape[0] // d
                idx = [c * d + perm[i] for c in range(comps) for i in range(d)]
                permuted[name] = W[idx]
        with torch.no_grad():
            li = ref.forward(cfg_i, p, x)
            lh = ref.forward(cfg_h, permuted, x)
            lh_unpermuted = ref.forward(cfg_h, p, x)
        check(max_diff(li, lh) < 1e-12, f"{attention}: styles differ after permutation {max_diff(li, lh)}")
        check(max_diff(li, lh_unpermuted) > 1e-6, f"{attention}: styles agree without permutation")


def test_rope_rotation_facts():
    # Position 0 is the identity; the pairs are (2i, 2i+1) or (i, i + d/2); angle t * theta^(-2i/d).
    d, T, theta = 4, 3, 100.0
    cos, sin = ref.rope_tables(T, d, theta, F64)
    x = torch.zeros(1, T, 1, d, dtype=F64)
    x[..., 0] = 1.0  # unit vector on channel 0
    inter = ref.apply_rope(x, cos, sin, "interleaved")
    half = ref.apply_rope(x, cos, sin, "half_split")
    check(torch.equal(inter[0, 0, 0], x[0, 0, 0]) and torch.equal(half[0, 0, 0], x[0, 0, 0]),
          "position 0 must not rotate")
    ang = 2 * 1.0  # t = 2, i = 0: theta^0
    check(abs(float(inter[0, 2, 0, 0]) - math.cos(ang)) < 1e-15
          and abs(float(inter[0, 2, 0, 1]) - math.sin(ang)) < 1e-15, "interleaved pair (0, 1)")
    check(abs(float(half[0, 2, 0, 0]) - math.cos(ang)) < 1e-15
          and abs(float(half[0, 2, 0, 2]) - math.sin(ang)) < 1e-15, "half-split pair (0, d/2)")
    y = torch.zeros(1, T, 1, d, dtype=F64)
    y[..., 2] = 1.0  # interleaved pair i = 1: angle t * theta^(-2/4) = t / 10
    r = ref.apply_rope(y, cos, sin, "interleaved")
    check(abs(float(r[0, 1, 0, 2]) - math.cos(0.1)) < 1e-15
          and abs(float(r[0, 1, 0, 3]) - math.sin(0.1)) < 1e-15, "inv_freq theta^(-2i/d)")


# ----------------------------------------------------------------------------- (e) loop formula

def loop_forward(cfg, params, inputs):
    """A second implementation in plain Python floats: loops over batch, positions and heads."""
    P = {n: t.tolist() for n, t in params.items()}
    d, h, hkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    eps = cfg.norm_eps

    def matvec(W, v):
        return [sum(a * b for a, b in zip(row, v)) for row in W]

    def rms(v, g):
        r = 1.0 / math.sqrt(sum(a * a for a in v) / len(v) + eps)
        return [a * r * (g[k] if g is not None else 1.0) for k, a in enumerate(v)]

    def rotate(vec, t):
        out = list(vec)
        for i in range(d // 2):
            a, b = (2 * i, 2 * i + 1) if cfg.rope_style == "interleaved" else (i, i + d // 2)
            z = complex(vec[a], vec[b]) * cmath.exp(1j * t * cfg.rope_theta ** (-2.0 * i / d))
            out[a], out[b] = z.real, z.imag
        return out

    def comps(vec, n, size):
        return [vec[c * size:(c + 1) * size] for c in range(n)]

    def attend(qs, ks, t):
        """Softmax weights of query qs[t] over keys ks[0..t]."""
        scores = [sum(a * b for a, b in zip(qs[t], ks[s])) / math.sqrt(d) for s in range(t + 1)]
        m = max(scores)
        e = [math.exp(s - m) for s in scores]
        z = sum(e)
        return [v / z for v in e]

    def weighted(w, vs):
        return [sum(w[s] * vs[s][c] for s in range(len(w))) for c in range(len(vs[0]))]

    all_logits = []
    for seq in inputs.tolist():
        T = len(seq)
        xs = [list(P["tok_embeddings.weight"][tok]) for tok in seq]
        for l in range(cfg.n_layers):
            pre = f"layers.{l}."
            xn = [rms(v, P[pre + "attn_norm.weight"]) for v in xs]
            nq = 2 * h if cfg.attention != "softmax" else h
            nk = 2 * hkv if cfg.attention == "diff_v1" else hkv
            vd = 2 * d if cfg.attention == "diff_v1" else d
            Q = [[rotate(c, t) for c in comps(matvec(P[pre + "attn.wq.weight"], xn[t]), nq, d)]
                 for t in range(T)]  # Q[t][component]
            K = [[rotate(c, t) for c in comps(matvec(P[pre + "attn.wk.weight"], xn[t]), nk, d)]
                 for t in range(T)]
            Vv = [comps(matvec(P[pre + "attn.wv.weight"], xn[t]), hkv, vd) for t in range(T)]
            outs = []
            for t in range(T):
                cat = []
                if cfg.attention == "diff_v1":
                    li = 0.8 - 0.6 * math.exp(-0.3 * l)
                    dot1 = sum(a * b for a, b in zip(P[pre + "attn.lambda_q1"], P[pre + "attn.lambda_k1"]))
                    dot2 = sum(a * b for a, b in zip(P[pre + "attn.lambda_q2"], P[pre + "attn.lambda_k2"]))
                    lam = math.exp(dot1) - math.exp(dot2) + li
                    gain = P[pre + "attn.head_norm.weight"] if cfg.head_norm_gain else None
                    for i in range(h):
                        j = i * hkv // h
                        w1 = attend([Q[s][2 * i] for s in range(T)], [K[s][2 * j] for s in range(T)], t)
                        w2 = attend([Q[s][2 * i + 1] for s in range(T)], [K[s][2 * j + 1] for s in range(T)], t)
                        w = [a - lam * b for a, b in zip(w1, w2)]
                        o = weighted(w, [Vv[s][j] for s in range(t + 1)])
                        cat += [a * (1.0 - li) for a in rms(o, gain)]
                elif cfg.attention == "diff_v2":
                    per_kv = 2 * h // hkv
                    a = []
                    for m in range(2 * h):
                        j = m // per_kv
                        w = attend([Q[s][m] for s in range(T)], [K[s][j] for s in range(T)], t)
                        a.append(weighted(w, [Vv[s][j] for s in range(t + 1)]))
                    lam = [1.0 / (1.0 + math.exp(-z)) for z in matvec(P[pre + "attn.wlambda.weight"], xn[t])]
                    for i in range(h):
                        cat += [p1 - lam[i] * p2 for p1, p2 in zip(a[2 * i], a[2 * i + 1])]
                else:
                    for m in range(h):
                        j = m * hkv // h
                        w = attend([Q[s][m] for s in range(T)], [K[s][j] for s in range(T)], t)
                        cat += weighted(w, [Vv[s][j] for s in range(t + 1)])
                outs.append(matvec(P[pre + "attn.wo.weight"], cat))
            xs = [[a + b for a, b in zip(xs[t], outs[t])] for t in range(T)]
            for t in range(T):
                yn = rms(xs[t], P[pre + "ffn_norm.weight"])
                g = matvec(P[pre + "ffn.w_gate.weight"], yn)
                u = matvec(P[pre + "ffn.w_up.weight"], yn)
                hid = [gg / (1.0 + math.exp(-gg)) * uu for gg, uu in zip(g, u)]
                xs[t] = [a + b for a, b in zip(xs[t], matvec(P[pre + "ffn.w_down.weight"], hid))]
        head = P["tok_embeddings.weight"] if cfg.tied_embeddings else P["output.weight"]
        all_logits.append([matvec(head, rms(v, P["norm.weight"])) for v in xs])
    return torch.tensor(all_logits, dtype=F64)


def loop_loss(logits, targets):
    total, n = 0.0, 0
    for b, row in enumerate(targets.tolist()):
        for t, y in enumerate(row):
            z = logits[b, t].tolist()
            m = max(z)
            total += m + math.log(sum(math.exp(v - m) for v in z)) - z[y]
            n += 1
    return total / n


def test_loop_formula_matches():
    cases = [
        ("diff_v1 mha", dict(attention="diff_v1", h=2, hkv=2, d=4)),
        ("diff_v1 gqa half_split untied", dict(attention="diff_v1", h=4, hkv=2, d=2,
                                               style="half_split", tied=False)),
        ("diff_v1 mha nogain", dict(attention="diff_v1", h=2, hkv=2, d=2, gain=False)),
        ("diff_v2 gqa", dict(attention="diff_v2", h=2, hkv=1, d=4)),
        ("softmax gqa", dict(attention="softmax", h=4, hkv=2, d=2)),
    ]
    for label, kw in cases:
        cfg = make_cfg(V=9, L=2, **kw)
        p = ref.random_params(cfg, seed=16, dtype=F64, std=0.4)
        x, y = tokens(cfg, 2, 5, seed=17), tokens(cfg, 2, 5, seed=18)
        logits, loss, _ = ref.run(cfg, p, x, y, F64)
        want = loop_forward(cfg, p, x)
        check(max_diff(logits, want) < 1e-10, f"{label}: logits differ by {max_diff(logits, want)}")
        check(abs(float(loss) - loop_loss(want, y)) < 1e-10, f"{label}: loss")


# ----------------------------------------------------------------------------- other facts

def test_causality():
    for attention, h, hkv in (("diff_v1", 2, 1), ("diff_v2", 2, 1), ("softmax", 2, 1)):
        cfg = make_cfg(attention, h=h, hkv=hkv, d=4)
        p = ref.random_params(cfg, seed=19, dtype=F64, std=0.4)
        x = tokens(cfg, 1, 6, seed=20)
        x2 = x.clone()
        x2[0, 3] = (x2[0, 3] + 1) % cfg.vocab_size
        with torch.no_grad():
            a, b = ref.forward(cfg, p, x), ref.forward(cfg, p, x2)
        check(torch.equal(a[:, :3], b[:, :3]), f"{attention}: the future leaked into the past")
        check(max_diff(a[:, 3:], b[:, 3:]) > 1e-6, f"{attention}: token 3 had no effect")


def test_single_position_attention_is_value():
    # T = 1: every softmax is [1], so softmax heads return v and DIFF V1 heads (1 - lambda) v.
    cfg = make_cfg("diff_v1", h=2, hkv=1, d=4, L=1)
    p = ref.random_params(cfg, seed=21, dtype=F64, std=0.4)
    x = tokens(cfg, 3, 1, seed=22)
    _, tr = traced(cfg, p, x)
    xn = ref.rms_norm(p["tok_embeddings.weight"][x.long()], p["layers.0.attn_norm.weight"], cfg.norm_eps)
    v = ref.project(xn, p["layers.0.attn.wv.weight"])  # (B, 1, 2d), one kv group
    lam = float(tr["lambda"][0])
    for i in range(cfg.n_heads):
        check(max_diff(tr["head_raw"][0][:, :, i], (1 - lam) * v) < 1e-14, f"diff_v1 head {i}")
    cfg = make_cfg("softmax", h=2, hkv=2, d=4, L=1)
    p = ref.random_params(cfg, seed=23, dtype=F64, std=0.4)
    _, tr = traced(cfg, p, x)
    xn = ref.rms_norm(p["tok_embeddings.weight"][x.long()], p["layers.0.attn_norm.weight"], cfg.norm_eps)
    v = ref.project(xn, p["layers.0.attn.wv.weight"]).view(3, 1, 2, 4)
    check(max_diff(tr["head_out"][0], v) < 1e-14, "softmax heads at T = 1")


def test_initial_loss_is_log_vocab():
    for attention in ("diff_v1", "diff_v2", "softmax"):
        cfg = make_cfg(attention, h=2, hkv=1, d=4, V=50)
        p = ref.random_params(cfg, seed=24, dtype=F64, std=1e-4)
        _, loss, _ = ref.run(cfg, p, tokens(cfg, 2, 8, 25), tokens(cfg, 2, 8, 26), F64)
        check(abs(float(loss) - math.log(50)) < 1e-3, f"{attention}: loss {float(loss)} != ln 50")


def test_cli_contract():
    script = os.path.join(HERE, "diff_reference.py")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_cfg("diff_v1", h=2, hkv=1, d=4, L=2, tied=False)
        cfg_json = dict(vocab_size=cfg.vocab_size, d_model=cfg.d_model, n_layers=cfg.n_layers,
                        attention="diff_v1", n_heads=2, n_kv_heads=1, head_dim=4, ffn_dim=cfg.ffn_dim,
                        rope_theta=10000.0, rope_style="interleaved", norm_eps=1e-5,
                        lambda_init_std=0.1, head_norm_gain=True, tied_embeddings=False,
                        max_seq_len=16, init_std=0.02)
        paths = {k: os.path.join(tmp, k) for k in ("cfg.json", "w.st", "tok.st", "out32.st", "out64.st")}
        with open(paths["cfg.json"], "w") as f:
            json.dump(cfg_json, f)
        p32 = ref.random_params(cfg, seed=27, dtype=torch.float32, std=0.3)
        safetensors_io.save_file(paths["w.st"], [(n, p32[n]) for n, _ in ref.param_specs(cfg)])
        x, y = tokens(cfg, 2, 6, 28), tokens(cfg, 2, 6, 29)
        safetensors_io.save_file(paths["tok.st"], {"inputs": x, "targets": y})
        for dtype, out in (("float32", "out32.st"), ("float64", "out64.st")):
            r = subprocess.run([sys.executable, script, "--config", paths["cfg.json"], "--weights",
                                paths["w.st"], "--tokens", paths["tok.st"], "--out", paths[out],
                                "--dtype", dtype], capture_output=True, text=True)
            check(r.returncode == 0, f"CLI failed: {r.stderr}")
            got, _ = safetensors_io.load_file(paths[out])
            tdtype = torch.float32 if dtype == "float32" else F64
            expected_names = ["logits", "loss"] + ["grad." + n for n, _ in ref.param_specs(cfg)]
            check(list(got) == expected_names, f"output names {list(got)[:4]}...")
            check(all(t.dtype == tdtype for t in got.values()), f"{dtype}: output dtype")
            check(tuple(got["logits"].shape) == (2, 6, cfg.vocab_size), "logits shape")
            check(tuple(got["loss"].shape) == (1,), "loss shape")
            logits, loss, grads = ref.run(cfg, p32, x, y, tdtype)
            check(torch.equal(got["logits"], logits) and torch.equal(got["loss"][0], loss), "values")
            for n, _ in ref.param_specs(cfg):
                check(tuple(got["grad." + n].shape) == tuple(p32[n].shape), f"grad shape {n}")
                check(torch.equal(got["grad." + n], grads[n]), f"grad {n}")
        a, _ = safetensors_io.load_file(paths["out32.st"])
        b, _ = safetensors_io.load_file(paths["out64.st"])
        check(abs(float(a["loss"][0]) - float(b["loss"][0])) < 1e-5, "f32 vs f64 loss")
        # A missing parameter is an error (exit 1, message naming it).
        partial = [(n, p32[n]) for n, _ in ref.param_specs(cfg) if n != "layers.1.attn.lambda_k2"]
        safetensors_io.save_file(paths["w.st"], partial)
        r = subprocess.run([sys.executable, script, "--config", paths["cfg.json"], "--weights",
                            paths["w.st"], "--tokens", paths["tok.st"], "--out", paths["out32.st"]],
                           capture_output=True, text=True)
        check(r.returncode == 1 and "layers.1.attn.lambda_k2" in r.stderr, f"missing param: {r.stderr}")


def test_safetensors_io_round_trip():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.st")
        ts = {"b": torch.tensor([1.5, -2.0], dtype=torch.bfloat16), "f": torch.randn(2, 3),
              "d": torch.randn(3, dtype=F64), "i": torch.tensor([[1, -2]], dtype=torch.int32),
              "s": torch.tensor(3.0), "e": torch.zeros(0, 2)}
        safetensors_io.save_file(path, ts, {"k": "v"})
        got, meta = safetensors_io.load_file(path)
        check(meta == {"k": "v"} and list(got) == list(ts), "names / metadata")
        for k in ts:
            check(got[k].dtype == ts[k].dtype and torch.equal(got[k], ts[k]), f"tensor {k}")
        with open(path, "ab") as f:
            f.write(b"x")
        try:
            safetensors_io.load_file(path)
            check(False, "trailing byte accepted")
        except safetensors_io.SafetensorsError:
            pass


TESTS = [
    test_diff_v1_gqa_pairing,
    test_diff_v2_pairing_and_gqa,
    test_softmax_gqa,
    test_lambda_init_uses_zero_based_layer,
    test_head_norm_uses_norm_eps_and_gain,
    test_gradcheck,
    test_rope_styles_are_a_row_permutation,
    test_rope_rotation_facts,
    test_loop_formula_matches,
    test_causality,
    test_single_position_attention_is_value,
    test_initial_loss_is_log_vocab,
    test_cli_contract,
    test_safetensors_io_round_trip,
]


def main():
    passed = failed = 0
    for test in TESTS:
        try:
            test()
            passed += 1
            print(f"PASS {test.__name__}", flush=True)
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {test.__name__}", flush=True)
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
