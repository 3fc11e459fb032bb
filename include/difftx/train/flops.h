// Model FLOPs per trained token and MFU, the formula of bench/README.md ("FLOPs per token and
// MFU"), shared by the training log and the GPU benchmark's figures:
//
//   F = 6 * N_matmul + 3 * L * A_fwd
//   N_matmul = L * (q_dim E + k_dim E + v_dim E + E attn_out_dim + 3 E F_ffn [+ h E, V2's
//              W_lambda]) + V E   (the output head; the tied embedding counted once)
//   A_fwd    = attention products of one layer's forward per token, with causal halving
//              T_eff = (T + 1) / 2: softmax 4 H d T_eff; DIFF V1 8 h d T_eff (two maps of d,
//              one P V of 2d); DIFF V2 4 (2h) d T_eff
//   MFU      = tokens/s * F / peak FLOP/s (dense bf16 of the device, runtime/device_info.h)
#pragma once

#include "difftx/model/config.h"

namespace difftx {

struct FlopCount {
  double n_matmul = 0;   // matmul parameters
  double attn_fwd = 0;   // A_fwd, per token per layer
  double per_token = 0;  // F: training FLOPs per token
};

// For training windows of `seq_len` tokens.
FlopCount training_flops_per_token(const ModelConfig& config, int seq_len);

}  // namespace difftx
