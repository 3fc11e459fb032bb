// Statistics kernels of the evaluation probes: |x| histogram over float32 bit patterns
// (attention_probe.h's bins), selection of the values at or above a threshold, and the per-row
// KL divergence of two logit tensors. `scores`, when given, restricts a (B, Hs, T, S) tensor to
// its causally visible entries.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "difftx/model/attention_probe.h"
#include "scalar_type.h"

namespace difftx::cuda {

// counts (kAbsHistogramBins) f64 on the device, overwritten.
void launch_abs_histogram(const void* x, ScalarType type, std::int64_t n,
                          const AttentionGeometry* scores, double* counts, cudaStream_t stream);

// Returns the count of (visible) elements with |x| >= threshold; writes the first `capacity` of
// them to out (device f32). workspace: at least 8 bytes.
std::int64_t launch_abs_select_at_least(const void* x, ScalarType type, std::int64_t n,
                                        const AttentionGeometry* scores, double threshold,
                                        float* out, std::int64_t capacity, void* workspace,
                                        cudaStream_t stream);

// out (n) f32 = KL(softmax(ref) || softmax(x)) per row of (n, vocab) bf16 or f32 tensors.
void launch_kl_divergence_rows(const void* ref, const void* x, ScalarType type, std::int64_t n,
                               std::int64_t vocab, float* out, cudaStream_t stream);

}  // namespace difftx::cuda
