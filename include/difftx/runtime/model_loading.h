// Putting loaded weights to use: a checkpoint's CPU f32 parameters converted to what a
// backend computes with (its parameter dtype, on its device).
#pragma once

#include "difftx/model/backend.h"
#include "difftx/model/params.h"

namespace difftx {

// Every tensor of `host` (CPU) converted to backend.param_dtype() and moved to
// backend.device(), names and order kept.
ParamSet params_for_backend(const ParamSet& host, const Backend& backend);

}  // namespace difftx
