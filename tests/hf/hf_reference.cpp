// Hugging Face DiffLlama / Llama eager forward pass, transcribed statement by statement from
// transformers (repeat_kv, the chunk/cat/repeat of DiffLlama's values, rotate_half RoPE).
#include "hf_reference.h"

#include <cmath>

#include "difftx/core/error.h"

namespace difftx::hf::testing {
namespace {

using Mat = std::vector<double>;  // row-major

struct Dense {
  std::int64_t rows = 0, cols = 0;
  std::vector<double> v;
};

Dense dense(const std::map<std::string, Tensor>& t, const std::string& name) {
  auto it = t.find(name);
  DIFFTX_CHECK(it != t.end(), "reference: tensor '{}' missing", name);
  Dense d;
  d.rows = it->second.dim(0);
  d.cols = it->second.ndim() == 2 ? it->second.dim(1) : 1;
  d.v = it->second.to_double_vector();
  return d;
}

// x (T, in) @ w^T, w (out, in) -> (T, out)
Mat linear(const Mat& x, std::int64_t T, const Dense& w) {
  Mat y(static_cast<std::size_t>(T * w.rows), 0.0);
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t o = 0; o < w.rows; ++o) {
      double acc = 0;
      for (std::int64_t i = 0; i < w.cols; ++i) acc += x[t * w.cols + i] * w.v[o * w.cols + i];
      y[t * w.rows + o] = acc;
    }
  }
  return y;
}

Mat rmsnorm(const Mat& x, std::int64_t T, std::int64_t C, const std::vector<double>* weight,
            double eps) {
  Mat y(x.size());
  for (std::int64_t t = 0; t < T; ++t) {
    double ss = 0;
    for (std::int64_t c = 0; c < C; ++c) ss += x[t * C + c] * x[t * C + c];
    const double r = 1.0 / std::sqrt(ss / double(C) + eps);
    for (std::int64_t c = 0; c < C; ++c)
      y[t * C + c] = x[t * C + c] * r * (weight ? (*weight)[c] : 1.0);
  }
  return y;
}

// rotate_half RoPE on (T, heads, D) in place.
void rope(Mat& x, std::int64_t T, int heads, int D, double theta) {
  const int half = D / 2;
  for (std::int64_t t = 0; t < T; ++t) {
    for (int i = 0; i < half; ++i) {
      const double inv_freq = 1.0 / std::pow(theta, double(2 * i) / double(D));
      const double a = double(t) * inv_freq, c = std::cos(a), s = std::sin(a);
      for (int h = 0; h < heads; ++h) {
        double* v = &x[(t * heads + h) * D];
        const double x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c - x2 * s;
        v[i + half] = x2 * c + x1 * s;
      }
    }
  }
}

// Causal softmax(q_c k^T / sqrt(D)) for query head `qh` against key head `kh`: (T, T).
Mat scores(const Mat& q, const Mat& k, std::int64_t T, int H, int Hk, int D, int qh, int kh) {
  Mat p(static_cast<std::size_t>(T * T), 0.0);
  for (std::int64_t t = 0; t < T; ++t) {
    double mx = -INFINITY;
    for (std::int64_t s = 0; s <= t; ++s) {
      double acc = 0;
      for (int e = 0; e < D; ++e) acc += q[(t * H + qh) * D + e] * k[(s * Hk + kh) * D + e];
      p[t * T + s] = acc / std::sqrt(double(D));
      mx = std::max(mx, p[t * T + s]);
    }
    double sum = 0;
    for (std::int64_t s = 0; s <= t; ++s) sum += (p[t * T + s] = std::exp(p[t * T + s] - mx));
    for (std::int64_t s = 0; s <= t; ++s) p[t * T + s] /= sum;
  }
  return p;
}

}  // namespace

std::vector<double> hf_reference_logits(const nlohmann::json& cfg,
                                        const std::map<std::string, Tensor>& tw,
                                        const std::vector<std::int32_t>& tokens) {
  const bool diff = cfg.at("model_type") == "diffllama";
  const int E = cfg.at("hidden_size"), L = cfg.at("num_hidden_layers"),
            H = cfg.at("num_attention_heads");
  const int Hk = cfg.value("num_key_value_heads", H);
  const int D = cfg.value("head_dim", E / H);
  const double eps = cfg.at("rms_norm_eps"), theta = cfg.at("rope_theta");
  const int g = H / Hk;
  const auto T = static_cast<std::int64_t>(tokens.size());

  const Dense emb = dense(tw, "model.embed_tokens.weight");
  Mat x(static_cast<std::size_t>(T * E));
  for (std::int64_t t = 0; t < T; ++t) {
    for (int c = 0; c < E; ++c) x[t * E + c] = emb.v[tokens[t] * std::int64_t(E) + c];
  }
  for (int l = 0; l < L; ++l) {
    auto P = [&](const char* s) { return fmt::format("model.layers.{}.{}", l, s); };
    const Dense ln1 = dense(tw, P("input_layernorm.weight"));
    Mat xn = rmsnorm(x, T, E, &ln1.v, eps);
    Mat q = linear(xn, T, dense(tw, P("self_attn.q_proj.weight")));  // (T, H, D)
    Mat k = linear(xn, T, dense(tw, P("self_attn.k_proj.weight")));  // (T, Hk, D)
    Mat v = linear(xn, T, dense(tw, P("self_attn.v_proj.weight")));  // (T, Hk, D)
    rope(q, T, H, D, theta);
    rope(k, T, Hk, D, theta);
    Mat attn;  // (T, H * D) before o_proj
    if (!diff) {
      attn.assign(static_cast<std::size_t>(T * H * D), 0.0);
      for (int c = 0; c < H; ++c) {
        const Mat p = scores(q, k, T, H, Hk, D, c, c / g);  // repeat_kv
        for (std::int64_t t = 0; t < T; ++t) {
          for (std::int64_t s = 0; s <= t; ++s) {
            for (int e = 0; e < D; ++e)
              attn[(t * H + c) * D + e] += p[t * T + s] * v[(s * Hk + c / g) * D + e];
          }
        }
      }
    } else {
      const Dense lq1 = dense(tw, P("self_attn.lambda_q1")),
                  lk1 = dense(tw, P("self_attn.lambda_k1"));
      const Dense lq2 = dense(tw, P("self_attn.lambda_q2")),
                  lk2 = dense(tw, P("self_attn.lambda_k2"));
      double d1 = 0, d2 = 0;
      for (int e = 0; e < D; ++e) {
        d1 += lq1.v[e] * lk1.v[e];
        d2 += lq2.v[e] * lk2.v[e];
      }
      const double lambda_init = 0.8 - 0.6 * std::exp(-0.3 * l);
      const double lambda_full = std::exp(d1) - std::exp(d2) + lambda_init;
      // value_states: repeat_kv -> (H heads of D); cat(chunk(2, heads), -1) -> H/2 heads of 2D;
      // repeat(1, 2, 1, 1) -> H heads of 2D: head c reads the pair c mod H/2.
      auto vrep = [&](std::int64_t s, int c, int e) { return v[(s * Hk + c / g) * D + e]; };
      auto vfull = [&](std::int64_t s, int c, int e2) {
        const int p = c % (H / 2);
        return e2 < D ? vrep(s, p, e2) : vrep(s, p + H / 2, e2 - D);
      };
      Mat out(static_cast<std::size_t>(T * H * 2 * D), 0.0);  // (T, H, 2D)
      for (int c = 0; c < H; ++c) {
        const Mat p = scores(q, k, T, H, Hk, D, c, c / g);
        for (std::int64_t t = 0; t < T; ++t) {
          for (std::int64_t s = 0; s <= t; ++s) {
            for (int e2 = 0; e2 < 2 * D; ++e2)
              out[(t * H + c) * 2 * D + e2] += p[t * T + s] * vfull(s, c, e2);
          }
        }
      }
      // chunk(2, heads): out1 = heads [0, H/2), out2 = [H/2, H); groupnorm without gain.
      attn.assign(static_cast<std::size_t>(T * H * D), 0.0);
      for (std::int64_t t = 0; t < T; ++t) {
        for (int p = 0; p < H / 2; ++p) {
          Mat o(2 * D);
          double ss = 0;
          for (int e2 = 0; e2 < 2 * D; ++e2) {
            o[e2] =
                out[(t * H + p) * 2 * D + e2] - lambda_full * out[(t * H + p + H / 2) * 2 * D + e2];
            ss += o[e2] * o[e2];
          }
          const double r = 1.0 / std::sqrt(ss / double(2 * D) + eps);
          for (int e2 = 0; e2 < 2 * D; ++e2)
            attn[t * H * D + p * 2 * D + e2] = (1 - lambda_init) * o[e2] * r;
        }
      }
    }
    Mat o = linear(attn, T, dense(tw, P("self_attn.o_proj.weight")));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    const Dense ln2 = dense(tw, P("post_attention_layernorm.weight"));
    Mat xn2 = rmsnorm(x, T, E, &ln2.v, eps);
    Mat gate = linear(xn2, T, dense(tw, P("mlp.gate_proj.weight")));
    Mat up = linear(xn2, T, dense(tw, P("mlp.up_proj.weight")));
    for (std::size_t i = 0; i < gate.size(); ++i)
      gate[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
    Mat down = linear(gate, T, dense(tw, P("mlp.down_proj.weight")));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += down[i];
  }
  const Dense fn = dense(tw, "model.norm.weight");
  Mat xf = rmsnorm(x, T, E, &fn.v, eps);
  const bool has_head = tw.count("lm_head.weight") != 0;
  return linear(xf, T, has_head ? dense(tw, "lm_head.weight") : emb);
}

}  // namespace difftx::hf::testing
