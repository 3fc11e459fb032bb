// The CPU backend: naive, obviously correct implementations of every Backend op in fp32 (for
// training small models) or fp64 (the oracle for finite-difference checks). OpenBLAS for matrix
// products, OpenMP for the loops that matter.
#pragma once

#include <memory>

#include "difftx/model/backend.h"

namespace difftx {

// dtype is both the activation and the parameter dtype: DType::f32 or DType::f64.
std::unique_ptr<Backend> make_cpu_backend(DType dtype = DType::f32);

}  // namespace difftx
