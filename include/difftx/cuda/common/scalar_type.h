// Element types as the CUDA launchers see them: the launchers take raw pointers plus one of
// these, so .cu files need no Tensor (tensor.h pulls in fmt, which nvcc cannot compile in C++20).
// The backend maps a Tensor's DType to one of these.
#pragma once

#include <cstddef>
#include <cstdint>

namespace difftx::cuda {

enum class ScalarType : std::uint8_t { f32, f64, bf16, i32 };

inline const char* scalar_type_name(ScalarType t) {
  switch (t) {
    case ScalarType::f32:
      return "f32";
    case ScalarType::f64:
      return "f64";
    case ScalarType::bf16:
      return "bf16";
    case ScalarType::i32:
      return "i32";
  }
  return "?";
}

// Bytes per element.
inline std::size_t scalar_type_size(ScalarType t) {
  return t == ScalarType::f64 ? 8 : t == ScalarType::bf16 ? 2 : 4;
}

}  // namespace difftx::cuda
