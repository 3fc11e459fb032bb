// Backend selection by device name; the CUDA backend exists only in DIFFTX_WITH_CUDA builds.
#include "difftx/runtime/backend_factory.h"

#include "difftx/core/error.h"
#include "difftx/cpu/cpu_backend.h"
#ifdef DIFFTX_WITH_CUDA
#include "difftx/cuda/backend/cuda_backend.h"
#endif

namespace difftx {

std::unique_ptr<Backend> make_backend(const std::string& device) {
  if (device == "cpu") return make_cpu_backend(DType::f32);
  if (device == "cuda") {
#ifdef DIFFTX_WITH_CUDA
    if (!cuda_device_available()) fail("--device cuda: no CUDA device is visible on this machine");
    return make_cuda_backend(0);
#else
    fail(
        "--device cuda: this difftx was built without CUDA (configure with `cmake --preset cuda`)");
#endif
  }
  fail("unknown device '{}' (use cpu or cuda)", device);
}

}  // namespace difftx
