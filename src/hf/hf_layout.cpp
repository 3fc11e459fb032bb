// Row maps between the difftx and Hugging Face attention layouts (see hf_layout.h).
#include "difftx/hf/hf_layout.h"

#include <cstring>

#include "difftx/core/error.h"

namespace difftx::hf {

HfHeads hf_heads_for(const ModelConfig& c) {
  switch (c.attention) {
    case AttentionKind::diff_v1:
      return {true, 2 * c.n_heads, 2 * c.n_kv_heads, c.head_dim};
    case AttentionKind::softmax:
      return {false, c.n_heads, c.n_kv_heads, c.head_dim};
    case AttentionKind::diff_v2:
      break;
  }
  fail(
      "DIFF V2 models cannot be converted to Hugging Face: transformers has no DIFF V2 class "
      "(it has DiffLlama for DIFF V1 and Llama for the softmax baseline); export a diff_v1 or "
      "softmax model instead");
}

std::vector<int> rope_channels_to_hf(int head_dim, RopeStyle style) {
  DIFFTX_CHECK(head_dim > 0 && head_dim % 2 == 0, "RoPE head_dim {} must be positive and even",
               head_dim);
  std::vector<int> m(static_cast<std::size_t>(head_dim));
  const int half = head_dim / 2;
  for (int e = 0; e < head_dim; ++e) {
    if (style == RopeStyle::half_split)
      m[e] = e;
    else
      m[e] = e < half ? 2 * e : 2 * (e - half) + 1;
  }
  return m;
}

namespace {

// Appends the d rows of difftx component `comp`, reordered for HF RoPE.
void push_component(RowMap& m, std::int64_t comp, const std::vector<int>& rope) {
  const std::int64_t d = static_cast<std::int64_t>(rope.size());
  for (int e : rope) m.push_back(comp * d + e);
}

// difftx channel e of a component <- HF channel: the inverse of rope_channels_to_hf.
std::vector<int> rope_channels_from_hf(int head_dim, RopeStyle style) {
  const std::vector<int> to = rope_channels_to_hf(head_dim, style);
  std::vector<int> from(to.size());
  for (std::size_t e = 0; e < to.size(); ++e)
    from[static_cast<std::size_t>(to[e])] = static_cast<int>(e);
  return from;
}

void require_exportable(const ModelConfig& c) {
  (void)hf_heads_for(c);
}

}  // namespace

RowMap export_q_rows(const ModelConfig& c) {
  require_exportable(c);
  const auto rope = rope_channels_to_hf(c.head_dim, c.rope_style);
  RowMap m;
  m.reserve(static_cast<std::size_t>(c.q_dim()));
  if (c.attention == AttentionKind::softmax) {
    for (int comp = 0; comp < c.n_heads; ++comp) push_component(m, comp, rope);
    return m;
  }
  const int h = c.n_heads;
  for (int hc = 0; hc < 2 * h; ++hc) push_component(m, hc < h ? 2 * hc : 2 * (hc - h) + 1, rope);
  return m;
}

RowMap export_k_rows(const ModelConfig& c) {
  require_exportable(c);
  const auto rope = rope_channels_to_hf(c.head_dim, c.rope_style);
  RowMap m;
  m.reserve(static_cast<std::size_t>(c.k_dim()));
  if (c.attention == AttentionKind::softmax) {
    for (int comp = 0; comp < c.n_kv_heads; ++comp) push_component(m, comp, rope);
    return m;
  }
  const int hk = c.n_kv_heads;
  for (int hc = 0; hc < 2 * hk; ++hc) push_component(m, hc < hk ? 2 * hc : 2 * (hc - hk) + 1, rope);
  return m;
}

RowMap export_v_rows(const ModelConfig& c) {
  require_exportable(c);
  RowMap m;
  m.reserve(static_cast<std::size_t>(c.v_dim()));
  if (c.attention == AttentionKind::softmax) {
    for (std::int64_t r = 0; r < c.v_dim(); ++r) m.push_back(r);
    return m;
  }
  const std::int64_t d = c.head_dim;
  const int hk = c.n_kv_heads;
  for (int hc = 0; hc < 2 * hk; ++hc) {
    const std::int64_t group = hc % hk, offset = hc < hk ? 0 : d;
    for (std::int64_t e = 0; e < d; ++e) m.push_back(group * 2 * d + offset + e);
  }
  return m;
}

DiffKvPairing diffllama_kv_pairing(int heads, int kv_heads) {
  if (heads <= 0 || heads % 2 != 0) {
    fail(
        "DiffLlama num_attention_heads must be a positive even number (it counts the two "
        "maps of every differential head), got {}",
        heads);
  }
  if (kv_heads <= 0 || heads % kv_heads != 0) {
    fail("DiffLlama num_key_value_heads ({}) must be positive and divide num_attention_heads ({})",
         kv_heads, heads);
  }
  const int h = heads / 2, g = heads / kv_heads;
  auto first = [&](int p) { return p / g; };
  auto second = [&](int p) { return (p + h) / g; };
  // The largest block of consecutive pairs that share one (first, second) combination.
  for (int r = h; r >= 1; --r) {
    if (h % r != 0) continue;
    bool uniform = true;
    for (int p = 0; p < h && uniform; ++p) {
      const int base = p / r * r;
      uniform = first(p) == first(base) && second(p) == second(base);
    }
    if (!uniform) continue;
    DiffKvPairing pairing;
    pairing.group_size = r;
    for (int j = 0; j < h / r; ++j) {
      pairing.first.push_back(first(j * r));
      pairing.second.push_back(second(j * r));
    }
    return pairing;
  }
  fail("internal error: no DiffLlama key/value pairing for {} heads, {} kv heads", heads, kv_heads);
}

RowMap import_q_rows(const ModelConfig& c, const HfHeads& hf) {
  const auto from = rope_channels_from_hf(c.head_dim, c.rope_style);
  const std::int64_t d = c.head_dim;
  RowMap m;
  m.reserve(static_cast<std::size_t>(c.q_dim()));
  for (int comp = 0; comp < c.q_heads(); ++comp) {
    // difftx component -> HF q head: softmax the same; V1 2i+m -> i + m*h.
    const std::int64_t hc = hf.diff ? comp / 2 + (comp % 2) * c.n_heads : comp;
    for (int e = 0; e < c.head_dim; ++e) m.push_back(hc * d + from[e]);
  }
  return m;
}

RowMap import_k_rows(const ModelConfig& c, const HfHeads& hf) {
  const auto from = rope_channels_from_hf(c.head_dim, c.rope_style);
  const std::int64_t d = c.head_dim;
  RowMap m;
  m.reserve(static_cast<std::size_t>(c.k_dim()));
  if (!hf.diff) {
    for (int comp = 0; comp < c.k_heads(); ++comp) {
      for (int e = 0; e < c.head_dim; ++e) m.push_back(comp * d + from[e]);
    }
    return m;
  }
  const DiffKvPairing p = diffllama_kv_pairing(hf.heads, hf.kv_heads);
  DIFFTX_CHECK(p.groups() == c.n_kv_heads, "difftx config has {} kv groups, DiffLlama pairing {}",
               c.n_kv_heads, p.groups());
  for (int j = 0; j < p.groups(); ++j) {
    for (int which = 0; which < 2; ++which) {
      const std::int64_t hc = which == 0 ? p.first[j] : p.second[j];
      for (int e = 0; e < c.head_dim; ++e) m.push_back(hc * d + from[e]);
    }
  }
  return m;
}

RowMap import_v_rows(const ModelConfig& c, const HfHeads& hf) {
  RowMap m;
  m.reserve(static_cast<std::size_t>(c.v_dim()));
  if (!hf.diff) {
    for (std::int64_t r = 0; r < c.v_dim(); ++r) m.push_back(r);
    return m;
  }
  const std::int64_t d = c.head_dim;
  const DiffKvPairing p = diffllama_kv_pairing(hf.heads, hf.kv_heads);
  DIFFTX_CHECK(p.groups() == c.n_kv_heads, "difftx config has {} kv groups, DiffLlama pairing {}",
               c.n_kv_heads, p.groups());
  for (int j = 0; j < p.groups(); ++j) {
    for (int which = 0; which < 2; ++which) {
      const std::int64_t hc = which == 0 ? p.first[j] : p.second[j];
      for (std::int64_t e = 0; e < d; ++e) m.push_back(hc * d + e);
    }
  }
  return m;
}

bool is_permutation(const RowMap& m, std::int64_t n) {
  if (static_cast<std::int64_t>(m.size()) != n) return false;
  std::vector<char> seen(static_cast<std::size_t>(n), 0);
  for (std::int64_t x : m) {
    if (x < 0 || x >= n || seen[static_cast<std::size_t>(x)]) return false;
    seen[static_cast<std::size_t>(x)] = 1;
  }
  return true;
}

RowMap invert_permutation(const RowMap& m) {
  const auto n = static_cast<std::int64_t>(m.size());
  DIFFTX_CHECK(is_permutation(m, n), "row map of {} entries is not a permutation", n);
  RowMap inv(m.size());
  for (std::int64_t r = 0; r < n; ++r) inv[static_cast<std::size_t>(m[r])] = r;
  return inv;
}

Tensor gather_rows(const Tensor& src, const RowMap& rows) {
  DIFFTX_CHECK(src.ndim() == 2 && src.dtype() == DType::f32 && src.device() == Device::cpu,
               "gather_rows needs a 2-D f32 CPU tensor, got {}", src.describe());
  const std::int64_t n = src.dim(0), cols = src.dim(1);
  Tensor out = Tensor::empty({static_cast<std::int64_t>(rows.size()), cols}, DType::f32);
  const float* s = src.data<float>();
  float* o = out.data<float>();
  for (std::size_t r = 0; r < rows.size(); ++r) {
    DIFFTX_CHECK(rows[r] >= 0 && rows[r] < n, "row map entry {} is outside [0, {})", rows[r], n);
    std::memcpy(o + static_cast<std::int64_t>(r) * cols, s + rows[r] * cols,
                static_cast<std::size_t>(cols) * sizeof(float));
  }
  return out;
}

}  // namespace difftx::hf
