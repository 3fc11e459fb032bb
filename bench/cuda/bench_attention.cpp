// Attention benchmark: fused DIFF V1 attention and the softmax baseline (2h heads of d), forward
// and backward, causal, seq 1K..16K, d = 64 and 128, batch x heads filling the GPU (B*T = 16K
// tokens; h = 16 DIFF heads for d = 64, 8 for d = 128, i.e. d_model 2048). Median of CUDA-event
// timings after warm-up. FLOPs (causal counts half of the T x T work):
//   DIFF V1 fwd = 2 maps x (2 B h T^2 d  [Q K^T] + 2 B h T^2 (2d)  [P V]) / 2 = 6 B h T^2 d
//   baseline fwd = 2h heads x (2 B T^2 d + 2 B T^2 d) / 2                      = 4 B h T^2 d
//   backward = 2.5 x forward (the FlashAttention convention: 5 products instead of 2).
// Prints a table, then "RESULT,..." lines that bench/cuda/attention_torch.py --ours reads.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "difftx/cuda/attention/attention.h"

namespace {

using difftx::cuda::bf16;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "bench_attention: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

std::uint16_t f2bf(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

// Device buffer of n bf16 filled with N(0, scale^2) values.
bf16* random_bf16(std::size_t n, float scale, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<std::uint16_t> h(n);
  for (auto& x : h) x = f2bf(dist(rng));
  void* p = nullptr;
  check(cudaMalloc(&p, n * 2), "cudaMalloc");
  check(cudaMemcpy(p, h.data(), n * 2, cudaMemcpyHostToDevice), "upload");
  return static_cast<bf16*>(p);
}

template <typename T>
T* zeros(std::size_t n) {
  void* p = nullptr;
  check(cudaMalloc(&p, std::max<std::size_t>(n, 1) * sizeof(T)), "cudaMalloc");
  check(cudaMemset(p, 0, n * sizeof(T)), "memset");
  return static_cast<T*>(p);
}

// Median time in ms of fn over `reps` runs after `warmup` runs.
double median_ms(const std::function<void()>& fn, int warmup, int reps) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  for (int i = 0; i < warmup; ++i) fn();
  check(cudaDeviceSynchronize(), "warmup");
  std::vector<float> ms(reps);
  for (int i = 0; i < reps; ++i) {
    check(cudaEventRecord(a), "record");
    fn();
    check(cudaEventRecord(b), "record");
    check(cudaEventSynchronize(b), "sync");
    check(cudaEventElapsedTime(&ms[i], a, b), "elapsed");
  }
  check(cudaGetLastError(), "launch");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[reps / 2];
}

struct Row {
  std::string kernel;
  int d, T, B, h;
  double fwd_ms, bwd_ms, fwd_flops;
};

}  // namespace

int main(int argc, char** argv) {
  // options: --reps N, --quick (seq 1K and 4K), --seq T (one length), --d D (one head dim),
  // --diff-only (skip the baseline; for profiling)
  int reps = 20, only_d = 0;
  bool diff_only = false;
  std::vector<int> seqs = {1024, 2048, 4096, 8192, 16384};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::atoi(argv[++i]);
    if (std::strcmp(argv[i], "--quick") == 0) seqs = {1024, 4096};
    if (std::strcmp(argv[i], "--seq") == 0 && i + 1 < argc) seqs = {std::atoi(argv[++i])};
    if (std::strcmp(argv[i], "--d") == 0 && i + 1 < argc) only_d = std::atoi(argv[++i]);
    if (std::strcmp(argv[i], "--diff-only") == 0) diff_only = true;
  }
  int n_dev = 0;
  if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
    std::fprintf(stderr, "bench_attention: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "properties");
  // the family CudaBackend would use (DIFFTX_ATTENTION_KERNELS=mma forces the portable one)
  const difftx::cuda::AttentionKernels kernels = difftx::cuda::select_attention_kernels(0);
  std::printf("device: %s, %d SMs; kernels: %s\n", prop.name, prop.multiProcessorCount,
              difftx::cuda::attention_kernels_name(kernels));

  std::mt19937 rng(1234);
  std::vector<Row> rows;
  constexpr int kTokens = 16384;
  for (int d : {64, 128}) {
    if (only_d != 0 && d != only_d) continue;
    const int h = d == 64 ? 16 : 8;  // DIFF heads; baseline has 2h heads of d
    for (int T : seqs) {
      const int B = kTokens / T;
      const std::size_t tok = static_cast<std::size_t>(B) * T;
      // q, k: (B,T,2h,d); v: (B,T,h,2d) for DIFF, the same memory read as (B,T,2h,d) by the
      // baseline; out/dout: (B,T,h,2d) = (B,T,2h,d) elements.
      const std::size_t n = tok * 2 * h * d;
      bf16* q = random_bf16(n, 1.f, rng);
      bf16* k = random_bf16(n, 1.f, rng);
      bf16* v = random_bf16(n, 1.f, rng);
      bf16* dout = random_bf16(n, 1.f, rng);
      bf16* out = zeros<bf16>(n);
      bf16* out2 = zeros<bf16>(n);
      bf16* dq = zeros<bf16>(n);
      bf16* dk = zeros<bf16>(n);
      bf16* dv = zeros<bf16>(n);
      float* lse = zeros<float>(tok * 2 * h);
      float* lambda = zeros<float>(1);
      float* dlambda = zeros<float>(1);
      const float lam = 0.8f;
      check(cudaMemcpy(lambda, &lam, 4, cudaMemcpyHostToDevice), "lambda");

      difftx::AttentionGeometry g;
      g.batch = B;
      g.q_len = g.kv_len = T;
      g.q_heads = 2 * h;
      g.head_dim = d;
      g.scale = 1.0 / std::sqrt(static_cast<double>(d));
      g.q_row_stride = g.kv_row_stride_k = 2 * h * d;
      g.kv_row_stride_v = 2 * h * d;

      difftx::AttentionGeometry gd = g;  // DIFF V1
      gd.k_heads = 2 * h;
      gd.v_heads = h;
      gd.v_head_dim = 2 * d;
      difftx::AttentionGeometry gs = g;  // baseline
      gs.k_heads = gs.v_heads = 2 * h;
      gs.v_head_dim = d;

      using difftx::cuda::AttentionKind;
      using difftx::cuda::AttentionPlan;
      const AttentionPlan pd = AttentionPlan::make(gd, AttentionKind::diff_v1, kernels);
      const AttentionPlan ps = AttentionPlan::make(gs, AttentionKind::softmax, kernels);
      const std::size_t ws_bytes =
          std::max(pd.backward_workspace_bytes(), ps.backward_workspace_bytes());
      void* ws = nullptr;
      check(cudaMalloc(&ws, ws_bytes), "workspace");

      const int warm = 3;
      Row rd{"diff_v1_fused", d, T, B, h, 0, 0, 6.0 * B * h * double(T) * T * d};
      rd.fwd_ms = median_ms(
          [&] {
            difftx::cuda::diff_attention_forward(pd, q, k, v, lambda, out, out2, lse, nullptr);
          },
          warm, reps);
      rd.bwd_ms = median_ms(
          [&] {
            difftx::cuda::diff_attention_backward(pd, q, k, v, lambda, out, out2, lse, dout, dq, dk,
                                                  dv, dlambda, ws, ws_bytes, nullptr);
          },
          warm, reps);
      rows.push_back(rd);
      if (!diff_only) {
        Row rs{"softmax_2h", d, T, B, h, 0, 0, 4.0 * B * h * double(T) * T * d};
        rs.fwd_ms = median_ms(
            [&] { difftx::cuda::softmax_attention_forward(ps, q, k, v, out, lse, nullptr); }, warm,
            reps);
        rs.bwd_ms = median_ms(
            [&] {
              difftx::cuda::softmax_attention_backward(ps, q, k, v, out, lse, dout, dq, dk, dv, ws,
                                                       ws_bytes, nullptr);
            },
            warm, reps);
        rows.push_back(rs);
      }
      for (void* p : std::initializer_list<void*>{q, k, v, dout, out, out2, dq, dk, dv, lse, lambda,
                                                  dlambda, ws}) {
        cudaFree(p);
      }
    }
  }

  std::printf("\n%-14s %4s %6s %3s %3s | %9s %9s %9s | %8s %8s %8s\n", "kernel", "d", "T", "B", "h",
              "fwd ms", "bwd ms", "f+b ms", "fwd TF/s", "bwd TF/s", "f+b TF/s");
  for (const Row& r : rows) {
    const double f = r.fwd_flops, bw = 2.5 * r.fwd_flops;
    std::printf("%-14s %4d %6d %3d %3d | %9.3f %9.3f %9.3f | %8.1f %8.1f %8.1f\n", r.kernel.c_str(),
                r.d, r.T, r.B, r.h, r.fwd_ms, r.bwd_ms, r.fwd_ms + r.bwd_ms, f / r.fwd_ms * 1e-9,
                bw / r.bwd_ms * 1e-9, (f + bw) / (r.fwd_ms + r.bwd_ms) * 1e-9);
  }
  std::printf("\n");
  for (const Row& r : rows) {
    std::printf("RESULT,%s,%d,%d,%d,%d,%.5f,%.5f\n", r.kernel.c_str(), r.d, r.T, r.B, r.h, r.fwd_ms,
                r.bwd_ms);
  }
  return 0;
}
