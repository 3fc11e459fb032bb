// Add: kernel and launcher (see add.cuh). 16-byte packs when every pointer is 16-byte aligned,
// the tail (fewer than one pack) and unaligned buffers element by element.
#include "add.cuh"
#include "device_util.cuh"

namespace difftx::cuda {
namespace {

// No __restrict__: out may alias a (add_inplace). Each element is read before it is written
// by the same thread.
template <typename T>
__global__ void add_packed_kernel(const T* a, const T* b, T* out, i64 n) {
  using A = acc_t<T>;
  using P = Pack<T>;
  const i64 packs = n / P::size;
  const i64 stride = i64(gridDim.x) * blockDim.x;
  const i64 tid = blockIdx.x * i64(blockDim.x) + threadIdx.x;
  for (i64 i = tid; i < packs; i += stride) {
    P pa = reinterpret_cast<const P*>(a)[i];
    P pb = reinterpret_cast<const P*>(b)[i];
    P po;
#pragma unroll
    for (int j = 0; j < P::size; ++j) {
      po.v[j] = convert_to<T>(convert_to<A>(pa.v[j]) + convert_to<A>(pb.v[j]));
    }
    reinterpret_cast<P*>(out)[i] = po;
  }
  const i64 t = packs * P::size + tid;  // tail
  if (t < n) out[t] = convert_to<T>(convert_to<A>(a[t]) + convert_to<A>(b[t]));
}

template <typename T>
__global__ void add_kernel(const T* a, const T* b, T* out, i64 n) {
  using A = acc_t<T>;
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n;
       i += i64(gridDim.x) * blockDim.x) {
    out[i] = convert_to<T>(convert_to<A>(a[i]) + convert_to<A>(b[i]));
  }
}

}  // namespace

void launch_add(const void* a, const void* b, void* out, ScalarType type, std::int64_t n,
                cudaStream_t stream) {
  if (n == 0) return;
  constexpr int threads = 256;
  const bool packed = aligned16(a) && aligned16(b) && aligned16(out);
  DIFFTX_DISPATCH_FLOAT("add", type, T, {
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    T* po = static_cast<T*>(out);
    if (packed) {
      const i64 packs = n / Pack<T>::size;
      add_packed_kernel<T>
          <<<grid_blocks(packs > 0 ? packs : 1, threads), threads, 0, stream>>>(pa, pb, po, n);
    } else {
      add_kernel<T><<<grid_blocks(n, threads * 4), threads, 0, stream>>>(pa, pb, po, n);
    }
  })
  DIFFTX_CUDA_CHECK_LAUNCH("add", "add_kernel");
}

}  // namespace difftx::cuda
