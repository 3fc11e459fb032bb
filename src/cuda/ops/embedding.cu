// Token embedding: kernels and launchers (see embedding.cuh).
#include <climits>
#include <cub/device/device_radix_sort.cuh>

#include "device_util.cuh"
#include "embedding.cuh"
#include "pdl.cuh"

namespace difftx::cuda {
namespace {

constexpr int kThreads = 128;

template <typename W, typename O>
__global__ void embedding_forward_kernel(const std::int32_t* __restrict__ ids,
                                         const W* __restrict__ table, O* __restrict__ out, i64 n,
                                         i64 vocab, i64 e) {
  for (i64 row = blockIdx.x; row < n; row += gridDim.x) {
    const std::int32_t id = ids[row];
    const bool valid = id >= 0 && id < vocab;
    const W* src = table + (valid ? i64(id) * e : 0);
    O* dst = out + row * e;
    for (i64 c = threadIdx.x; c < e; c += blockDim.x) {
      dst[c] = valid ? convert_to<O>(src[c]) : convert_to<O>(__int_as_float(0x7fc00000));
    }
  }
}

// The same, for a table and output of one element type and rows of whole 16-byte chunks: a
// thread issues its loads of up to four chunks of a row before its stores, so a row costs one
// memory round trip rather than one per element (a batch-1 decode step's 1.4B embedding: 6.4 us
// with the kernel above, on an H200). `invalid` is a chunk of NaNs in that type.
__global__ void embedding_copy_kernel(const std::int32_t* __restrict__ ids,
                                      const uint4* __restrict__ table, uint4* __restrict__ out,
                                      i64 n, i64 vocab, i64 chunks, uint4 invalid) {
  constexpr int kAhead = 4;
  pdl_wait();  // launched with PDL: the ids may come from the kernel before
  pdl_launch_dependents();
  for (i64 row = blockIdx.x; row < n; row += gridDim.x) {
    const std::int32_t id = ids[row];
    const bool valid = id >= 0 && id < vocab;
    const uint4* src = table + (valid ? i64(id) * chunks : 0);
    uint4* dst = out + row * chunks;
    for (i64 c0 = threadIdx.x; c0 < chunks; c0 += kAhead * i64(blockDim.x)) {
      uint4 v[kAhead];
#pragma unroll
      for (int u = 0; u < kAhead; ++u) {
        const i64 c = c0 + u * i64(blockDim.x);
        if (c < chunks) v[u] = valid ? src[c] : invalid;
      }
#pragma unroll
      for (int u = 0; u < kAhead; ++u) {
        const i64 c = c0 + u * i64(blockDim.x);
        if (c < chunks) dst[c] = v[u];
      }
    }
  }
}

__global__ void iota_kernel(std::int32_t* __restrict__ p, i64 n) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n;
       i += i64(gridDim.x) * blockDim.x) {
    p[i] = static_cast<std::int32_t>(i);
  }
}

// keys (n): ids sorted ascending (as unsigned, so negative ids sort last); rows (n): their
// positions, ascending within equal ids (the radix sort is stable). The block at the first
// position of each run of equal ids sums that run's dout rows in order.
template <typename G>
__global__ void embedding_backward_kernel(const unsigned* __restrict__ keys,
                                          const std::int32_t* __restrict__ rows,
                                          const G* __restrict__ dout, float* __restrict__ dtable,
                                          i64 n, i64 vocab, i64 e) {
  for (i64 s = blockIdx.x; s < n; s += gridDim.x) {
    const unsigned id = keys[s];
    if ((s > 0 && keys[s - 1] == id) || i64(id) >= vocab) continue;
    i64 end = s + 1;
    while (end < n && keys[end] == id) ++end;
    float* dst = dtable + i64(id) * e;
    for (i64 c = threadIdx.x; c < e; c += blockDim.x) {
      float acc = 0.f;
      for (i64 j = s; j < end; ++j) acc += convert_to<float>(dout[i64(rows[j]) * e + c]);
      dst[c] += acc;
    }
  }
}

constexpr std::size_t align256(std::size_t b) {
  return (b + 255) / 256 * 256;
}

std::size_t cub_sort_bytes(std::int64_t n) {
  std::size_t bytes = 0;
  DIFFTX_CUDA_CHECK(
      "embedding_backward",
      cub::DeviceRadixSort::SortPairs(
          nullptr, bytes, static_cast<const unsigned*>(nullptr), static_cast<unsigned*>(nullptr),
          static_cast<const std::int32_t*>(nullptr), static_cast<std::int32_t*>(nullptr), int(n)));
  return bytes;
}

}  // namespace

void launch_embedding_forward(const std::int32_t* ids, const void* table, ScalarType table_type,
                              void* out, ScalarType out_type, std::int64_t n, std::int64_t vocab,
                              std::int64_t e, cudaStream_t stream) {
  if (n == 0 || e == 0) return;
  const unsigned blocks = grid_blocks(n, 1, INT_MAX);
  const std::int64_t row_bytes = e * (table_type == ScalarType::f32 ? 4 : 2);
  if (table_type == out_type && (table_type == ScalarType::f32 || table_type == ScalarType::bf16) &&
      row_bytes % 16 == 0 && aligned16(table) && aligned16(out)) {
    const std::uint32_t nan_word = table_type == ScalarType::f32 ? 0x7fc00000u : 0x7fc07fc0u;
    // With PDL the next kernel (a decode step's QKV GEMV) starts beside it and loads its
    // first weights while the rows are copied.
    DIFFTX_CUDA_CHECK("embedding_forward",
                      launch_pdl(embedding_copy_kernel, dim3(blocks), dim3(kThreads), 0, stream,
                                 pdl_enabled("embedding"), ids, static_cast<const uint4*>(table),
                                 static_cast<uint4*>(out), n, vocab, row_bytes / 16,
                                 make_uint4(nan_word, nan_word, nan_word, nan_word)));
    return;
  }
  DIFFTX_DISPATCH_F32_BF16("embedding_forward", table_type, W,
                           {DIFFTX_DISPATCH_F32_BF16("embedding_forward", out_type, O, {
                             embedding_forward_kernel<W, O><<<blocks, kThreads, 0, stream>>>(
                                 ids, static_cast<const W*>(table), static_cast<O*>(out), n, vocab,
                                 e);
                           })})
  DIFFTX_CUDA_CHECK_LAUNCH("embedding_forward", "embedding_forward_kernel");
}

std::size_t embedding_backward_workspace_bytes(std::int64_t n) {
  if (n > INT_MAX) throw_op_error("embedding_backward", "more than 2^31-1 token ids");
  const std::size_t id_bytes = align256(std::size_t(n) * 4);
  return 3 * id_bytes + cub_sort_bytes(n);
}

void launch_embedding_backward(const std::int32_t* ids, const void* dout, ScalarType dout_type,
                               float* dtable, std::int64_t n, std::int64_t vocab, std::int64_t e,
                               void* workspace, std::size_t workspace_bytes, cudaStream_t stream) {
  if (n == 0 || e == 0) return;
  if (workspace_bytes < embedding_backward_workspace_bytes(n)) {
    throw_op_error("embedding_backward", "workspace too small");
  }
  const std::size_t id_bytes = align256(std::size_t(n) * 4);
  char* base = static_cast<char*>(workspace);
  auto* keys_sorted = reinterpret_cast<unsigned*>(base);
  auto* rows = reinterpret_cast<std::int32_t*>(base + id_bytes);
  auto* rows_sorted = reinterpret_cast<std::int32_t*>(base + 2 * id_bytes);
  void* sort_temp = base + 3 * id_bytes;
  std::size_t sort_bytes = workspace_bytes - 3 * id_bytes;

  iota_kernel<<<grid_blocks(n, 1024), 256, 0, stream>>>(rows, n);
  DIFFTX_CUDA_CHECK_LAUNCH("embedding_backward", "iota_kernel");
  DIFFTX_CUDA_CHECK(
      "embedding_backward",
      cub::DeviceRadixSort::SortPairs(sort_temp, sort_bytes, reinterpret_cast<const unsigned*>(ids),
                                      keys_sorted, rows, rows_sorted, int(n), 0, 32, stream));
  const unsigned blocks = grid_blocks(n, 1, INT_MAX);
  DIFFTX_DISPATCH_F32_BF16("embedding_backward", dout_type, G, {
    embedding_backward_kernel<G><<<blocks, kThreads, 0, stream>>>(
        keys_sorted, rows_sorted, static_cast<const G*>(dout), dtable, n, vocab, e);
  })
  DIFFTX_CUDA_CHECK_LAUNCH("embedding_backward", "embedding_backward_kernel");
}

}  // namespace difftx::cuda
