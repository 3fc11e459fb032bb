// CPU token embedding: gather rows forward, scatter-add rows backward.
#include "cpu_ops.h"
#include "difftx/core/error.h"

namespace difftx::cpu {

template <typename T>
void embedding_forward(const std::int32_t* ids, i64 n, const T* table, i64 vocab, i64 e, T* out) {
  for (i64 i = 0; i < n; ++i) {
    std::int32_t id = ids[i];
    DIFFTX_CHECK(id >= 0 && id < vocab,
                 "token id {} at position {} is outside the vocabulary [0, {})", id, i, vocab);
    const T* row = table + static_cast<i64>(id) * e;
    T* dst = out + i * e;
    for (i64 c = 0; c < e; ++c) dst[c] = row[c];
  }
}

template <typename T>
void embedding_backward(const std::int32_t* ids, i64 n, const T* dout, i64 vocab, i64 e,
                        T* dtable) {
  for (i64 i = 0; i < n; ++i) {
    T* row = dtable + static_cast<i64>(ids[i]) * e;
    const T* src = dout + i * e;
    for (i64 c = 0; c < e; ++c) row[c] += src[c];
  }
}

template void embedding_forward<float>(const std::int32_t*, i64, const float*, i64, i64, float*);
template void embedding_forward<double>(const std::int32_t*, i64, const double*, i64, i64, double*);
template void embedding_backward<float>(const std::int32_t*, i64, const float*, i64, i64, float*);
template void embedding_backward<double>(const std::int32_t*, i64, const double*, i64, i64,
                                         double*);

}  // namespace difftx::cpu
