// Device pieces bench_read_chain's kernels share (read_chain_kernels.cu, read_ring_kernel.cu):
// folding a 16-byte chunk into a value so that no load can be dropped, a gpu-scope acquire load
// for spinning on arrival counters, and a cooperative launch (every block resident at once).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace difftx::bench {

__device__ __forceinline__ unsigned fold16(const uint4& v, unsigned acc) {
  return acc ^ (v.x + v.y * 3u + v.z * 5u + v.w * 7u);
}

__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// kernel<<<blocks, threads, smem, stream>>>(args...) as a cooperative launch: it fails rather
// than start when the grid's blocks cannot all be resident, so blocks may spin on each other.
template <typename... Params, typename... Args>
cudaError_t launch_cooperative(void (*kernel)(Params...), unsigned blocks, unsigned threads,
                               std::size_t smem, cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeCooperative;
  attribute.val.cooperative = 1;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

}  // namespace difftx::bench
