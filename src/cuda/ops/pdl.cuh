// Programmatic dependent launch (Hopper): a kernel launched with launch_pdl may be scheduled
// while the kernel before it on the stream is still running, so launch latency and block start
// overlap the previous kernel's tail. Every such kernel calls pdl_wait() before it touches
// memory the previous kernels write or read (that returns once they have completed and their
// writes are visible), and pdl_launch_dependents() to let the next kernel be scheduled early.
// Both are no-ops below sm_90 and for kernels launched without the attribute. CUDA graphs keep
// the dependencies when the launches are captured.
#pragma once

#include <cuda_runtime.h>

namespace difftx::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// Launches kernel<<<grid, block, smem, stream>>>(args...) with the programmatic-serialization
// attribute when `pdl` is set; returns the launch status.
template <typename... Params, typename... Args>
cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem,
                       cudaStream_t stream, bool pdl, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = pdl ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

// Whether PDL launches are used: on devices of compute capability 9.0 and up, unless the
// environment sets DIFFTX_PDL=0. Asked once per process.
bool pdl_enabled();

// Whether the kernels of one op ("gemv", "attention", "sample", "rope", "kv_write", "copy",
// "embedding") are launched with PDL: pdl_enabled(), unless the op is named in DIFFTX_PDL_OFF (a
// list separated by commas or '+', for profiling what a kernel's early start gains or costs: its
// blocks then start only once the kernel before it has completed).
bool pdl_enabled(const char* op);

}  // namespace difftx::cuda
