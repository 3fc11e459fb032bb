// Row maps between difftx's attention layout and Hugging Face's (DiffLlama for DIFF V1, Llama
// for the softmax baseline): which row of W_q, W_k, W_v lands where, and the RoPE channel order.
//
// difftx (DIFF V1, h heads, h_kv groups, component dim d, n_rep = h / h_kv):
//   W_q rows: components [Q1_0, Q2_0, Q1_1, Q2_1, ...], each d rows (component 2i+m, m = 0/1)
//   W_k rows: [K1_0, K2_0, K1_1, K2_1, ...] over the h_kv groups
//   W_v rows: h_kv groups of 2d
//   head i attends with (Q1_i, K1_j), (Q2_i, K2_j) and reads V_j, j = i / n_rep
// DiffLlama (H = num_attention_heads, H_kv = num_key_value_heads, g = H / H_kv):
//   q heads c = 0..H-1; pair p = 0..H/2-1 uses q_p with k_{p/g} and q_{p+H/2} with
//   k_{(p+H/2)/g}, and reads the value [v_{p/g}, v_{(p+H/2)/g}] (2 x head_dim channels).
// Export (H = 2h, H_kv = 2h_kv): q_i = Q1_i, q_{i+h} = Q2_i, k_j = K1_j, k_{j+h_kv} = K2_j,
//   v_j = first half of V_j, v_{j+h_kv} = second half; pair p = head i (W_o unchanged).
// RoPE: difftx rotates channel pairs (2i, 2i+1) (interleaved) or (i, i + d/2) (half_split);
//   HF always (i, i + d/2). Interleaved -> HF puts channel 2i at i and 2i+1 at i + d/2.
#pragma once

#include <cstdint>
#include <vector>

#include "difftx/core/tensor.h"
#include "difftx/model/config.h"

namespace difftx::hf {

// A row map `m` for a target matrix: target row r is source row m[r]. Export maps (difftx ->
// HF) are permutations; an import map may repeat source rows (see DiffKvPairing).
using RowMap = std::vector<std::int64_t>;

// The attention heads as Hugging Face counts them.
struct HfHeads {
  bool diff = false;  // DiffLlama (true) or Llama
  int heads = 0;      // num_attention_heads (DiffLlama: 2h components)
  int kv_heads = 0;   // num_key_value_heads (DiffLlama: key heads = value halves)
  int head_dim = 0;   // head_dim (= the difftx component dim d)
};

// The HF heads an export of `config` has: DIFF V1 (2h, 2h_kv, d), softmax (h, h_kv, d).
// Throws difftx::Error for DIFF V2, which has no transformers class.
HfHeads hf_heads_for(const ModelConfig& config);

// For each HF channel e of one d-sized RoPE component, the difftx channel it takes.
std::vector<int> rope_channels_to_hf(int head_dim, RopeStyle style);

// Export maps: HF row <- difftx row, for W_q, W_k and W_v of `config` (V1 or softmax).
RowMap export_q_rows(const ModelConfig& config);
RowMap export_k_rows(const ModelConfig& config);
RowMap export_v_rows(const ModelConfig& config);

// How difftx groups read DiffLlama key/value heads. difftx group j (heads j*group_size ..
// (j+1)*group_size - 1) takes K1 and the first value half from HF head first[j], K2 and the
// second half from second[j]. With an even H_kv this is first[j] = j, second[j] = j + H_kv/2
// and group_size = g; with an odd H_kv (e.g. 1) a pair's two maps share key heads, which
// difftx represents by repeating those heads (h_kv = H_kv groups of g/2 heads).
struct DiffKvPairing {
  int group_size = 0;       // difftx n_rep
  std::vector<int> first;   // per difftx group
  std::vector<int> second;  // per difftx group
  int groups() const { return static_cast<int>(first.size()); }
};
// Throws difftx::Error unless heads is even, kv_heads > 0 and kv_heads divides heads.
DiffKvPairing diffllama_kv_pairing(int heads, int kv_heads);

// Import maps: difftx row <- HF row, for a difftx `config` made from `hf` (config.n_kv_heads
// must equal the pairing's group count for DiffLlama, hf.kv_heads for Llama).
RowMap import_q_rows(const ModelConfig& config, const HfHeads& hf);
RowMap import_k_rows(const ModelConfig& config, const HfHeads& hf);
RowMap import_v_rows(const ModelConfig& config, const HfHeads& hf);

// True when `m` holds every index 0..n-1 exactly once.
bool is_permutation(const RowMap& m, std::int64_t n);
// The inverse of a permutation (throws difftx::Error if `m` is none).
RowMap invert_permutation(const RowMap& m);

// out[r] = src[rows[r]] for a 2-D f32 CPU tensor; out has rows.size() rows.
Tensor gather_rows(const Tensor& src, const RowMap& rows);

}  // namespace difftx::hf
