// CudaBackend memory helpers and elementwise adds: fill, convert, synchronize, pinned host memory,
// asynchronous copies and queue marks, add, add_inplace.
#include <cstdint>

#include "../ops/add.cuh"
#include "../ops/convert.cuh"
#include "../ops/copy_words.cuh"
#include "../ops/fill.cuh"
#include "cuda_backend.h"
#include "difftx/cuda/common/check.h"
#include "validate.h"

namespace difftx::cuda {

void CudaBackend::fill(Tensor& t, double value) {
  require_cuda(t, "fill", "t");
  launch_fill(t.raw(), scalar_type(t), t.numel(), value, stream());
}

void CudaBackend::convert(const Tensor& src, Tensor& dst) {
  const char* op = "convert";
  require_cuda(src, op, "src");
  require_cuda(dst, op, "dst");
  require_numel(dst, src.numel(), op, "dst");
  require(src.dtype() == dst.dtype() || (src.dtype() != DType::i32 && dst.dtype() != DType::i32),
          op, "i32 tensors convert only to i32");
  launch_convert(src.raw(), scalar_type(src), dst.raw(), scalar_type(dst), src.numel(), stream());
}

void CudaBackend::synchronize() {
  DIFFTX_CUDA_CHECK("synchronize", cudaStreamSynchronize(stream()));
}

namespace {

// An event recorded on the stream; wait() blocks the host until the stream has passed it.
class StreamEventMark final : public QueueMark {
 public:
  explicit StreamEventMark(cudaStream_t stream) {
    DIFFTX_CUDA_CHECK("mark_queue", cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    const cudaError_t status = cudaEventRecord(event_, stream);
    if (status != cudaSuccess) {
      cudaEventDestroy(event_);
      DIFFTX_CUDA_CHECK("mark_queue", status);
    }
  }
  ~StreamEventMark() override { cudaEventDestroy(event_); }
  StreamEventMark(const StreamEventMark&) = delete;
  StreamEventMark& operator=(const StreamEventMark&) = delete;
  void wait() override { DIFFTX_CUDA_CHECK("wait for queued work", cudaEventSynchronize(event_)); }

 private:
  cudaEvent_t event_ = nullptr;
};

// Transfers up to this size go through a copy kernel where both sides are device-addressable.
constexpr std::size_t kKernelCopyMax = std::size_t(4) << 20;

}  // namespace

// Registered page-locked and mapped: copy_async moves small transfers to and from it with a
// kernel (copy_words), which the stream runs right after the kernel before it, where a
// copy-engine transfer waited about 9 us on the H200 (scripts/gpu/trace_decode.sh with copies).
std::shared_ptr<void> CudaBackend::pin_host(const Tensor& host) {
  require(host.device() == Device::cpu, "pin_host", "the tensor must be in host memory");
  void* ptr = host.raw();
  // Whole pages of its own (the CPU allocator gives them from one page up): two registrations
  // must not share a page.
  require(host.nbytes() >= 4096 && reinterpret_cast<std::uintptr_t>(ptr) % 4096 == 0, "pin_host",
          "the tensor must be a page-aligned host allocation of at least 4096 bytes");
  DIFFTX_CUDA_CHECK("pin_host", cudaHostRegister(ptr, host.nbytes(), cudaHostRegisterMapped));
  void* device = nullptr;
  const cudaError_t status = cudaHostGetDevicePointer(&device, ptr, 0);
  if (status != cudaSuccess) {
    cudaHostUnregister(ptr);
    DIFFTX_CUDA_CHECK("pin_host", status);
  }
  {
    std::lock_guard<std::mutex> lock(pinned_->mutex);
    pinned_->by_host[reinterpret_cast<std::uintptr_t>(ptr)] = {host.nbytes(), device};
  }
  // The handle may outlive the backend object: it holds the registry, not the backend.
  return std::shared_ptr<void>(ptr, [registry = pinned_](void* p) {
    {
      std::lock_guard<std::mutex> lock(registry->mutex);
      registry->by_host.erase(reinterpret_cast<std::uintptr_t>(p));
    }
    cudaHostUnregister(p);
  });
}

void* CudaBackend::mapped_device_pointer(const void* host, std::size_t bytes) const {
  const auto address = reinterpret_cast<std::uintptr_t>(host);
  std::lock_guard<std::mutex> lock(pinned_->mutex);
  auto it = pinned_->by_host.upper_bound(address);
  if (it == pinned_->by_host.begin()) return nullptr;
  --it;
  const std::size_t offset = address - it->first;
  if (offset + bytes > it->second.bytes) return nullptr;
  return static_cast<char*>(it->second.device) + offset;
}

void CudaBackend::copy_async(const Tensor& dst, const Tensor& src) {
  require(dst.shape() == src.shape() && dst.dtype() == src.dtype(), "copy_async",
          "dst and src must have the same shape and dtype");
  const std::size_t bytes = dst.nbytes();
  if (bytes == 0) return;
  auto device_side = [&](const Tensor& t) -> void* {
    return t.device() == Device::cuda ? t.raw() : mapped_device_pointer(t.raw(), bytes);
  };
  void* d = device_side(dst);
  void* s = device_side(src);
  const bool words = bytes % 4 == 0 && reinterpret_cast<std::uintptr_t>(d) % 4 == 0 &&
                     reinterpret_cast<std::uintptr_t>(s) % 4 == 0;
  if (d && s && words && bytes <= kKernelCopyMax) {
    launch_copy_words(d, s, static_cast<std::int64_t>(bytes / 4), stream());
    return;
  }
  DIFFTX_CUDA_CHECK("copy_async",
                    cudaMemcpyAsync(dst.raw(), src.raw(), bytes, cudaMemcpyDefault, stream()));
}

// A step's upload with its fed tokens (the engine): one kernel instead of a copy per run.
void CudaBackend::copy_async_patched(const Tensor& dst, const Tensor& src,
                                     const std::vector<CopyPatch>& patches, const Tensor& from) {
  const char* op = "copy_async_patched";
  require(dst.shape() == src.shape() && dst.dtype() == DType::i32 && src.dtype() == DType::i32, op,
          "dst and src must be i32 tensors of one shape");
  require(from.defined() && from.dtype() == DType::i32, op, "from must be an i32 tensor");
  const std::int64_t n = dst.numel();
  for (const CopyPatch& p : patches) {
    require(p.count >= 0 && p.at >= 0 && p.at + p.count <= n && p.from >= 0 &&
                p.from + p.count <= from.numel(),
            op, "a patch lies outside dst or from");
  }
  // The kernel reads src before it waits on the work queued before: host memory only.
  void* d = dst.device() == Device::cuda ? dst.raw() : nullptr;
  const void* s =
      src.device() == Device::cpu ? mapped_device_pointer(src.raw(), src.nbytes()) : nullptr;
  const bool one_kernel = d && s && from.device() == Device::cuda &&
                          patches.size() <= std::size_t(kMaxWordPatches) &&
                          dst.nbytes() <= kKernelCopyMax;
  if (!one_kernel) {
    Backend::copy_async_patched(dst, src, patches, from);
    return;
  }
  WordPatches w;
  for (const CopyPatch& p : patches) {
    if (p.count == 0) continue;
    w.at[w.count] = p.at;
    w.from[w.count] = p.from;
    w.len[w.count] = p.count;
    ++w.count;
  }
  launch_copy_words_patched(d, s, n, static_cast<const std::uint32_t*>(from.raw()), w, stream());
}

std::unique_ptr<QueueMark> CudaBackend::mark_queue() {
  return std::make_unique<StreamEventMark>(stream());
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  const char* op = "add";
  require_dtype(a, op, "a", {DType::bf16, DType::f32, DType::f64});
  require_cuda(b, op, "b");
  require_cuda(out, op, "out");
  require_same_dtype(a, "a", b, "b", op);
  require_same_dtype(a, "a", out, "out", op);
  require_numel(b, a.numel(), op, "b");
  require_numel(out, a.numel(), op, "out");
  launch_add(a.raw(), b.raw(), out.raw(), scalar_type(a), a.numel(), stream());
}

void CudaBackend::add_inplace(Tensor& acc, const Tensor& b) {
  const char* op = "add_inplace";
  require_dtype(acc, op, "acc", {DType::bf16, DType::f32, DType::f64});
  require_cuda(b, op, "b");
  require_same_dtype(acc, "acc", b, "b", op);
  require_numel(b, acc.numel(), op, "b");
  launch_add(acc.raw(), b.raw(), acc.raw(), scalar_type(acc), acc.numel(), stream());
}

}  // namespace difftx::cuda
