// Default implementations of the Backend's fused decode-path ops (backend.h): the unfused
// sequence of ops they stand for. A backend overrides them where fusing saves a pass or a launch;
// these are also the reference its fused versions are tested against.
#include "difftx/model/backend.h"

namespace difftx {

void Backend::rmsnorm_linear_forward_concat(const Tensor& x, const Tensor& norm_w, double eps,
                                            const std::vector<const Tensor*>& ws, Tensor& xn,
                                            Tensor& rstd, Tensor& out) {
  rmsnorm_forward(x, norm_w, eps, 1.0, xn, rstd);
  linear_forward_concat(xn, ws, out);
}

void Backend::rmsnorm_swiglu_linear_forward(const Tensor& x, const Tensor& norm_w, double eps,
                                            const Tensor& w_gate, const Tensor& w_up, Tensor& xn,
                                            Tensor& rstd, Tensor& gate, Tensor& up, Tensor& out) {
  rmsnorm_forward(x, norm_w, eps, 1.0, xn, rstd);
  swiglu_linear_forward(xn, w_gate, w_up, gate, up, out);
}

}  // namespace difftx
