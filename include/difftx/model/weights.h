// Typed views of a model's parameters: one struct of tensors per layer plus the global ones,
// bound once from a ParamSet (the tensors share its storage). The checkpoint name of every member
// is written once, in the table of src/model/weights.cpp that also defines parameter_specs, so a
// member and its name cannot drift apart. Members a config does not use stay undefined.
#pragma once

#include <vector>

#include "difftx/core/tensor.h"
#include "difftx/model/config.h"
#include "difftx/model/params.h"

namespace difftx {

// One layer's weights, torch Linear layout (out, in); names are "layers.<l>.<checkpoint suffix>".
struct LayerWeights {
  Tensor attn_norm;  // (E)              attn_norm.weight
  Tensor wq;         // (q_dim, E)       attn.wq.weight
  Tensor wk;         // (k_dim, E)       attn.wk.weight
  Tensor wv;         // (v_dim, E)       attn.wv.weight
  Tensor wo;         // (E, attn_out_dim) attn.wo.weight
  Tensor lambda_q1;  // (d)              attn.lambda_q1          diff_v1 only
  Tensor lambda_k1;  // (d)              attn.lambda_k1          diff_v1 only
  Tensor lambda_q2;  // (d)              attn.lambda_q2          diff_v1 only
  Tensor lambda_k2;  // (d)              attn.lambda_k2          diff_v1 only
  Tensor head_norm;  // (2d)             attn.head_norm.weight   diff_v1 with head_norm_gain
  Tensor wlambda;    // (h, E)           attn.wlambda.weight     diff_v2 only
  Tensor ffn_norm;   // (E)              ffn_norm.weight
  Tensor w_gate;     // (F, E)           ffn.w_gate.weight
  Tensor w_up;       // (F, E)           ffn.w_up.weight
  Tensor w_down;     // (E, F)           ffn.w_down.weight
};

struct ModelWeights {
  Tensor tok_embeddings;             // (V, E)  tok_embeddings.weight
  std::vector<LayerWeights> layers;  // L
  Tensor norm;                       // (E)     norm.weight
  Tensor output;                     // (V, E)  output.weight; tok_embeddings itself when tied
};

// Views of `set`'s tensors for every parameter of `config`, looked up by name once. Fails naming
// the first tensor `set` lacks or holds with the wrong shape.
ModelWeights bind_weights(const ModelConfig& config, const ParamSet& set);

}  // namespace difftx
