// The engine op cases (see engine_op_cases.h): paged-attention shapes, random paged inputs and
// the dense-attention reference.
#include "engine_op_cases.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <bit>
#include <numeric>
#include <random>

#include "difftx/cpu/cpu_backend.h"

namespace difftx::testing {
namespace {

PagedCase make_case(PagedAttentionKind kind, int h, int hkv, int d, int block,
                    std::vector<int> lengths) {
  PagedCase c;
  c.kind = kind;
  const bool diff = kind == PagedAttentionKind::diff;
  c.q_heads = diff ? 2 * h : h;
  c.k_heads = diff ? 2 * hkv : hkv;
  c.v_heads = hkv;
  c.head_dim = d;
  c.block_size = block;
  c.lengths = std::move(lengths);
  c.name = fmt::format("{}_h{}_hkv{}_d{}_bs{}_len_{}", diff ? "diff" : "softmax", h, hkv, d, block,
                       fmt::join(c.lengths, "_"));
  return c;
}

}  // namespace

std::vector<PagedCase> paged_attention_cases() {
  using K = PagedAttentionKind;
  std::vector<PagedCase> cases;
  // small d: CPU only; block boundaries (len = bs - 1, bs, bs + 1), one token, empty rows
  cases.push_back(make_case(K::softmax, 4, 2, 6, 4, {1, 3, 4, 5, 0, 9}));
  cases.push_back(make_case(K::diff, 2, 1, 4, 4, {1, 4, 5, 8, 0, 13}));
  cases.push_back(make_case(K::diff, 3, 3, 6, 3, {2, 7, 1}));
  // the CUDA kernels' head dims; GQA ratios 1, 2, 4; odd lengths; long contexts for split-K
  cases.push_back(make_case(K::softmax, 4, 4, 64, 16, {1, 15, 16, 17, 33}));
  cases.push_back(make_case(K::softmax, 8, 2, 64, 16, {100, 1, 0, 257}));
  cases.push_back(make_case(K::softmax, 8, 1, 128, 16, {31, 64, 5}));
  cases.push_back(make_case(K::diff, 6, 6, 64, 16, {1, 16, 17, 50, 0}));
  cases.push_back(make_case(K::diff, 4, 2, 64, 16, {3, 129, 200}));
  cases.push_back(make_case(K::diff, 4, 1, 128, 16, {47, 1}));
  cases.push_back(make_case(K::diff, 2, 2, 64, 16, {3000}));  // split-K over many blocks
  cases.push_back(make_case(K::softmax, 2, 2, 128, 16, {2049}));
  cases.push_back(make_case(K::diff, 2, 1, 64, 8, {77, 9}));  // another block size
  // DIFF V1 at d = 128 with long contexts: the staged kernel's splits held to one wave (a
  // multiprocessor holds one of its blocks; 8 heads want 33 splits, get 16, and at batch 2 8)
  cases.push_back(make_case(K::diff, 8, 8, 128, 16, {4100}));
  cases.push_back(make_case(K::diff, 8, 8, 128, 16, {4100, 3}));
  // The batch-1 shapes of the 1.4B benchmark (DIFF V1 and its matched baseline) near 512 tokens:
  // on an H200 one-tile splits per head, combined by the last block to finish (staged variant)
  cases.push_back(make_case(K::diff, 8, 8, 128, 16, {512}));
  cases.push_back(make_case(K::softmax, 16, 16, 128, 16, {509}));
  return cases;
}

bool paged_case_runs_on_cuda(const PagedCase& c) {
  return c.head_dim == 64 || c.head_dim == 128;
}

PagedInputs make_paged_inputs(const PagedCase& c, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  PagedInputs in;
  PagedAttentionGeometry& g = in.g;
  g.kind = c.kind;
  g.batch = static_cast<int>(c.lengths.size());
  g.q_heads = c.q_heads;
  g.k_heads = c.k_heads;
  g.v_heads = c.v_heads;
  g.head_dim = c.head_dim;
  g.v_head_dim = c.kind == PagedAttentionKind::diff ? 2 * c.head_dim : c.head_dim;
  g.scale = 1.0 / std::sqrt(double(c.head_dim));
  g.block_size = c.block_size;
  int used = 0, max_blocks = 1;
  for (int n : c.lengths) {
    const int blocks = (n + c.block_size - 1) / c.block_size;
    used += blocks;
    max_blocks = std::max(max_blocks, blocks);
  }
  g.max_blocks = max_blocks + 1;  // a spare column the kernels must not read
  const int num_blocks = used + c.spare_blocks;
  g.num_slots = std::int64_t(num_blocks) * c.block_size;
  g.q_row_stride = std::int64_t(g.q_heads) * g.head_dim;

  auto fill = [&](Shape s, double scale) {
    Tensor t = Tensor::empty(std::move(s), DType::f64);
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = scale * normal(rng);
    return t;
  };
  // Scores of O(1-3) so the softmax is neither flat nor one-hot.
  in.q = fill({g.batch, g.q_row_stride}, 1.5);
  in.k_pool = fill({g.num_slots, std::int64_t(g.k_heads) * g.head_dim}, 1.0);
  in.v_pool = fill({g.num_slots, std::int64_t(g.v_heads) * g.v_head_dim}, 1.0);
  in.lambda = Tensor::from_vector({1}, {0.35f + 0.3f * float(rng() % 100) / 100.f}, DType::f64);

  // Blocks handed out in a random order, as a long-running pool would.
  std::vector<std::int32_t> ids(static_cast<std::size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  in.block_tables = Tensor::empty({g.batch, g.max_blocks}, DType::i32);
  in.context_lens = Tensor::empty({g.batch}, DType::i32);
  std::int32_t* table = in.block_tables.data<std::int32_t>();
  std::fill_n(table, in.block_tables.numel(), -7);  // unused entries: never dereferenced
  std::size_t next = 0;
  for (int b = 0; b < g.batch; ++b) {
    const int n = c.lengths[static_cast<std::size_t>(b)];
    in.context_lens.data<std::int32_t>()[b] = n;
    for (int j = 0; j < (n + c.block_size - 1) / c.block_size; ++j) {
      table[std::int64_t(b) * g.max_blocks + j] = ids[next++];
    }
  }
  return in;
}

Tensor paged_reference(const PagedInputs& in) {
  const PagedAttentionGeometry& g = in.g;
  auto cpu = make_cpu_backend(DType::f64);
  const int out_heads = g.out_heads(), dv = g.v_head_dim;
  const std::int64_t kw = std::int64_t(g.k_heads) * g.head_dim;
  const std::int64_t vw = std::int64_t(g.v_heads) * dv;
  Tensor out = Tensor::zeros({g.batch, out_heads, dv}, DType::f64);
  for (int b = 0; b < g.batch; ++b) {
    const int n = in.context_lens.data<std::int32_t>()[b];
    if (n == 0) continue;
    Tensor k = Tensor::empty({n, kw}, DType::f64), v = Tensor::empty({n, vw}, DType::f64);
    for (int t = 0; t < n; ++t) {
      const std::int64_t slot =
          std::int64_t(in.block_tables.data<std::int32_t>()[std::int64_t(b) * g.max_blocks +
                                                            t / g.block_size]) *
              g.block_size +
          t % g.block_size;
      k.rows(t, t + 1).copy_from(in.k_pool.rows(slot, slot + 1));
      v.rows(t, t + 1).copy_from(in.v_pool.rows(slot, slot + 1));
    }
    Tensor q = in.q.rows(b, b + 1);
    const AttentionGeometry ag =
        packed_attention_geometry(1, 1, n, n - 1, g.q_heads, g.k_heads, g.v_heads, g.head_dim, dv);
    Tensor o = out.rows(b, b + 1);
    Tensor lse = Tensor::empty({1, g.q_heads, 1}, DType::f64);
    if (g.kind == PagedAttentionKind::diff) {
      Tensor none;
      cpu->diff_attention_forward(ag, q, k, v, in.lambda, o, none, lse);
    } else {
      cpu->softmax_attention_forward(ag, q, k, v, o, lse);
    }
  }
  return out;
}

std::vector<std::int32_t> pack_sample_params(double temperature, int top_k, double top_p,
                                             std::uint64_t seed, int counter, int top_n) {
  std::vector<std::int32_t> w(kSampleParamWords, 0);
  w[kSampleTemperature] = std::bit_cast<std::int32_t>(static_cast<float>(temperature));
  w[kSampleTopK] = top_k;
  w[kSampleTopP] = std::bit_cast<std::int32_t>(static_cast<float>(top_p));
  w[kSampleSeedLo] = static_cast<std::int32_t>(static_cast<std::uint32_t>(seed));
  w[kSampleSeedHi] = static_cast<std::int32_t>(static_cast<std::uint32_t>(seed >> 32));
  w[kSampleCounter] = counter;
  w[kSampleTopN] = top_n;
  return w;
}

}  // namespace difftx::testing
