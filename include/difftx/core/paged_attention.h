// Plain structs and pure functions shared by the inference (engine) ops of the Backend and
// their CUDA kernels (in core, so the CUDA op layer below model uses them too): the geometry of
// paged decode attention over a KV block pool, the packed per-row sampling parameters, and the
// counter-based random numbers of device sampling. Standard headers only (nvcc compiles this
// header; the functions are host + device).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DIFFTX_HOST_DEVICE __host__ __device__
#else
#define DIFFTX_HOST_DEVICE
#endif

namespace difftx {

// ---- paged KV cache and decode attention
//
// A KV pool of one layer holds `num_slots` token rows: k_pool (num_slots, k_heads * head_dim),
// v_pool (num_slots, v_heads * v_head_dim), activation dtype. Slots are grouped in blocks of
// `block_size` consecutive rows; block b holds slots [b * block_size, (b + 1) * block_size). A
// sequence's block table lists its blocks in order: its token t sits in slot
// table[t / block_size] * block_size + t % block_size.
enum class PagedAttentionKind : std::uint8_t {
  softmax,  // one softmax map per query component (baseline; DIFF V2 before its combine)
  diff,     // DIFF V1: components 2i, 2i+1 of head i, out = (A1 - lambda A2) V
};

// One decode query per sequence. Softmax: query component m reads key/value head
// m / (q_heads / k_heads). DIFF V1: head i (q components 2i, 2i+1) reads key components 2j,
// 2j+1 and value head j = i / ((q_heads / 2) / v_heads).
struct PagedAttentionGeometry {
  PagedAttentionKind kind = PagedAttentionKind::softmax;
  int batch = 0;                  // B sequences (rows of q, block_tables, context_lens)
  int q_heads = 0;                // d-sized query components per token (V1: 2h)
  int k_heads = 0;                // d-sized key components per pool row (V1: 2h_kv)
  int v_heads = 0;                // value heads per pool row
  int head_dim = 0;               // d
  int v_head_dim = 0;             // d (softmax) or 2d (V1)
  double scale = 0.0;             // softmax scale, 1/sqrt(d)
  int block_size = 0;             // tokens per KV block
  int max_blocks = 0;             // columns of the block table
  std::int64_t num_slots = 0;     // rows of each pool
  std::int64_t q_row_stride = 0;  // elements between sequences in q (>= q_heads * head_dim)

  int out_heads() const { return kind == PagedAttentionKind::diff ? q_heads / 2 : q_heads; }
  // Query components that share one key/value head (read together in one pass over K/V).
  int group_rows() const {
    return kind == PagedAttentionKind::diff ? q_heads / v_heads : q_heads / k_heads;
  }
};

// ---- device sampling
//
// Per-row sampling parameters, packed as kSampleParamWords 32-bit words of an i32 tensor
// (floats stored by bit pattern), so one host-to-device copy carries a whole batch's.
inline constexpr int kSampleParamWords = 8;
enum SampleParamWord : int {
  kSampleTemperature = 0,  // f32 bits; 0 = greedy
  kSampleTopK = 1,         // i32; 0 = off
  kSampleTopP = 2,         // f32 bits; 1 = off
  kSampleSeedLo = 3,       // low 32 bits of the u64 seed
  kSampleSeedHi = 4,       // high 32 bits
  kSampleCounter = 5,      // i32: index of the token being drawn for this sequence
  kSampleTopN = 6,         // i32: top-logprob alternatives wanted for this row (<= the op's top_n)
};

// A 64-bit mix (splitmix64's finaliser): a bijection with good avalanche.
DIFFTX_HOST_DEVICE inline std::uint64_t sample_mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// The uniform in (0, 1) attached to token `id` when drawing token number `counter` of the
// sequence seeded with `seed`: 24 random bits, centred, so the value is exact in f32 and f64.
DIFFTX_HOST_DEVICE inline float sample_uniform(std::uint64_t seed, std::uint32_t counter,
                                               std::uint32_t id) {
  std::uint64_t h = sample_mix64(seed ^ 0x9e3779b97f4a7c15ull);
  h = sample_mix64(h ^ (std::uint64_t(counter) << 32 | id));
  return (float(h >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

}  // namespace difftx
