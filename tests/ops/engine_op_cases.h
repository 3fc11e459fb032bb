// Op cases of the engine's inference ops (forward only): paged decode attention, KV pool write
// and gather, RoPE at per-token positions and device sampling. Each case builds host f64
// inputs; the references come from the CPU backend's dense ops (attention through a gathered,
// contiguous cache) in f64. Used by the CPU test (test_engine_ops.cpp) and the CUDA-vs-CPU test
// (tests/cuda/test_engine_ops_cuda.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "difftx/model/backend.h"

namespace difftx::testing {

struct PagedCase {
  std::string name;
  PagedAttentionKind kind = PagedAttentionKind::softmax;
  int q_heads = 0, k_heads = 0, v_heads = 0, head_dim = 0;
  int block_size = 16;
  std::vector<int> lengths;  // context length of each sequence (0 allowed)
  int spare_blocks = 3;      // pool blocks beyond what the sequences use (never read)
};

// Odd lengths, lengths at and around block boundaries, GQA ratios, both kinds, d = 64 / 128
// (the CUDA kernels' sizes) and small d (CPU only: cuda_ok = false).
std::vector<PagedCase> paged_attention_cases();
bool paged_case_runs_on_cuda(const PagedCase& c);

// Host inputs of a paged case: q (B, q_heads*d), pools, shuffled block tables, lengths, lambda.
struct PagedInputs {
  PagedAttentionGeometry g;
  Tensor q, k_pool, v_pool;           // f64
  Tensor block_tables, context_lens;  // i32
  Tensor lambda;                      // (1) f64
};
PagedInputs make_paged_inputs(const PagedCase& c, std::uint64_t seed);

// The reference output (B, out_heads, dv) in f64: each sequence's K/V gathered from the pools
// and attended by the CPU backend's dense softmax / DIFF attention op at q_offset = length - 1.
Tensor paged_reference(const PagedInputs& in);

// One row's sampling parameters, packed as the sampling op takes them (kSampleParamWords).
std::vector<std::int32_t> pack_sample_params(double temperature, int top_k, double top_p,
                                             std::uint64_t seed, int counter, int top_n);

}  // namespace difftx::testing
