// Conversion of loaded checkpoint parameters to a backend's dtype and device.
#include "difftx/runtime/model_loading.h"

namespace difftx {

ParamSet params_for_backend(const ParamSet& host, const Backend& backend) {
  ParamSet out;
  for (std::size_t i = 0; i < host.size(); ++i) {
    Tensor t = host.tensor(i).to_dtype(backend.param_dtype());
    out.add(host.name(i), backend.device() == Device::cpu ? t : t.to(backend.device()));
  }
  return out;
}

}  // namespace difftx
