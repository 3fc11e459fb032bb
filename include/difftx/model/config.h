// ModelConfig: the architecture of one model (DIFF V1, DIFF V2 or the softmax baseline),
// read from JSON with strict validation. Field-by-field documentation: docs/config.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "difftx/core/enum_names.h"

namespace difftx {

enum class AttentionKind { diff_v1, diff_v2, softmax };
enum class RopeStyle { interleaved, half_split };

// The names used in configs, checkpoints and options (one table each, see core/enum_names.h).
inline constexpr EnumTable<AttentionKind, 3> kAttentionKinds{{{AttentionKind::diff_v1, "diff_v1"},
                                                              {AttentionKind::diff_v2, "diff_v2"},
                                                              {AttentionKind::softmax, "softmax"}}};
inline constexpr EnumTable<RopeStyle, 2> kRopeStyles{
    {{RopeStyle::interleaved, "interleaved"}, {RopeStyle::half_split, "half_split"}}};

const char* attention_kind_name(AttentionKind kind);
const char* rope_style_name(RopeStyle style);
// `what` names the text in errors ("--rope-style", "x.safetensors: metadata 'difftx_rope_style'").
RopeStyle parse_rope_style(std::string_view text, std::string_view what);

// Limits of ModelConfig::validate beyond positivity: a model above them cannot be trained or
// even listed (its tensor list alone would not fit in memory).
inline constexpr double kMaxParameters = 0x1p40;  // 1.1e12 parameters (4 TiB of f32 weights)
inline constexpr int kMaxLayers = 1 << 16;
inline constexpr int kMaxSeqLen = 1 << 24;

struct ModelConfig {
  int vocab_size = 0;
  int d_model = 0;   // E
  int n_layers = 0;  // L
  AttentionKind attention = AttentionKind::diff_v1;
  int n_heads = 0;     // h, paper convention (DIFF V1: differential heads; V2: output heads)
  int n_kv_heads = 0;  // h_kv, divides n_heads
  int head_dim = 0;    // d, the q/k component dim
  int ffn_dim = 0;     // SwiGLU inner dim F
  double rope_theta = 10000.0;
  RopeStyle rope_style = RopeStyle::interleaved;
  double norm_eps = 1e-5;        // every RMSNorm, the per-head one of DIFF V1 included
  double lambda_init_std = 0.1;  // std of lambda_{q1,k1,q2,k2}
  bool head_norm_gain = true;    // DIFF V1 learnable per-head norm gain (2d)
  bool tied_embeddings = true;
  int max_seq_len = 0;
  double init_std = 0.02;  // std of embeddings and projections (residual outputs scaled)

  // Derived sizes. Weights follow torch.nn.Linear layout (out_features, in_features).
  int n_rep() const { return n_heads / n_kv_heads; }
  int q_heads() const;     // number of d-sized query components: 2h (V1, V2) or h (softmax)
  int k_heads() const;     // number of d-sized key components: 2h_kv (V1) or h_kv
  int v_head_dim() const;  // 2d (V1) or d
  int q_dim() const { return q_heads() * head_dim; }           // rows of W_q
  int k_dim() const { return k_heads() * head_dim; }           // rows of W_k
  int v_dim() const { return n_kv_heads * v_head_dim(); }      // rows of W_v
  int attn_out_dim() const { return n_heads * v_head_dim(); }  // columns of W_o

  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  nlohmann::json to_json() const;
  // Checks every invariant and limit; throws difftx::Error naming the field, or, for a model
  // above kMaxParameters, saying how much memory its weights alone would need.
  void validate(const std::string& source) const;
};

// Reads a model config file, or the "model" object of a run config (regular files only, JSON
// within the limits of difftx/core/json_input.h).
ModelConfig load_model_config(const std::filesystem::path& path);

// DIFF V1: lambda_init = 0.8 - 0.6 * exp(-0.3 * layer), layer 0-based.
double lambda_init(int layer);

// The parameter-matched softmax Transformer for a DIFF config: V1 with h heads of dim d ->
// 2h heads of dim d (and 2h_kv kv heads); V2 -> h heads (the V2 paper's baseline). Other
// fields are kept. A softmax config is returned unchanged.
ModelConfig matched_baseline(const ModelConfig& config);

// Default SwiGLU width: 8/3 * d_model rounded up to a multiple of 64.
int default_ffn_dim(int d_model);

}  // namespace difftx
