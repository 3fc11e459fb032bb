// Statistics kernels of the evaluation probes: |x| histogram over float32 bit patterns (the
// bins of difftx/model/attention_probe.h: the top 15 bits of |x|), selection of the values at or
// above a threshold, and the per-row KL divergence of two logit tensors. `rows`, when given,
// restricts a (B, Hs, T, S) scores tensor to its causally visible entries.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

inline constexpr int kProbeHistogramBins = 32768;

// Rows of a scores tensor: row r is query t = r % q_len, which sees keys s < min(kv_len,
// q_offset + t + 1).
struct ScoreRows {
  int q_len = 0, kv_len = 0, q_offset = 0;
};

// counts (kProbeHistogramBins) f64 on the device, overwritten.
void launch_abs_histogram(const void* x, ScalarType type, std::int64_t n, const ScoreRows* rows,
                          double* counts, cudaStream_t stream);

// Returns the count of (visible) elements with |x| >= threshold; writes the first `capacity` of
// them to out (device f32). workspace: at least 8 bytes.
std::int64_t launch_abs_select_at_least(const void* x, ScalarType type, std::int64_t n,
                                        const ScoreRows* rows, double threshold, float* out,
                                        std::int64_t capacity, void* workspace,
                                        cudaStream_t stream);

// out (n) f32 = KL(softmax(ref) || softmax(x)) per row of (n, vocab) bf16 or f32 tensors.
void launch_kl_divergence_rows(const void* ref, const void* x, ScalarType type, std::int64_t n,
                               std::int64_t vocab, float* out, cudaStream_t stream);

}  // namespace difftx::cuda
