// AttentionPlan (include/difftx/cuda/attention/attention.h): the one check of an attention
// call's geometry against the requirements of its kind and kernel family. The launchers take
// only plans, and CudaBackend makes one plan per call, so a geometry is checked exactly once.
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "difftx/core/error.h"
#include "difftx/cuda/attention/attention.h"

namespace difftx::cuda {
namespace {

constexpr int kMaxTokens = 1 << 22;  // q_len and kv_len: 4M (the kernels' index arithmetic)
constexpr int kMaxGrid = 65535;      // batch and query heads: grid dimensions y, z

std::string stride_problem(std::int64_t stride, std::int64_t width, const char* name) {
  if (stride < width) {
    return fmt::format("{} = {} is smaller than heads*dim = {}", name, stride, width);
  }
  if (stride % 8 != 0) return fmt::format("{} = {} must be a multiple of 8 elements", name, stride);
  return {};
}

// The first requirement g breaks for `kind` and `kernels`, or "" when it meets them all.
std::string geometry_problem(const AttentionGeometry& g, AttentionKind kind,
                             AttentionKernels kernels) {
  const bool diff = kind == AttentionKind::diff_v1;
  if (g.head_dim != 64 && g.head_dim != 128) {
    return fmt::format("head_dim {} is not supported (64 or 128)", g.head_dim);
  }
  const int dv = diff ? 2 * g.head_dim : g.head_dim;
  if (g.v_head_dim != dv) {
    return fmt::format("v_head_dim {} must be {} for head_dim {}", g.v_head_dim, dv, g.head_dim);
  }
  if (g.batch < 1 || g.batch > kMaxGrid) {
    return fmt::format("batch {} out of range [1, {}]", g.batch, kMaxGrid);
  }
  if (g.q_len < 1) return fmt::format("q_len {} must be >= 1", g.q_len);
  if (g.q_len > kMaxTokens) return fmt::format("q_len {} exceeds 4M tokens", g.q_len);
  if (g.q_offset < 0) return fmt::format("q_offset {} is negative", g.q_offset);
  if (g.kv_len < std::int64_t(g.q_offset) + g.q_len) {
    return fmt::format("kv_len {} < q_offset {} + q_len {}", g.kv_len, g.q_offset, g.q_len);
  }
  if (g.kv_len > kMaxTokens) return fmt::format("kv_len {} exceeds 4M tokens", g.kv_len);
  if (g.q_heads > kMaxGrid) return fmt::format("q_heads {} exceeds {}", g.q_heads, kMaxGrid);
  if (g.q_heads < 1 || g.k_heads < 1 || g.v_heads < 1) {
    return fmt::format("head counts must be positive (q {}, k {}, v {})", g.q_heads, g.k_heads,
                       g.v_heads);
  }
  if (diff) {
    if (g.q_heads % 2 != 0 || g.k_heads != 2 * g.v_heads) {
      return fmt::format("q_heads {} must be even and k_heads {} = 2 * v_heads {}", g.q_heads,
                         g.k_heads, g.v_heads);
    }
    if ((g.q_heads / 2) % g.v_heads != 0) {
      return fmt::format("heads {} not a multiple of kv heads {}", g.q_heads / 2, g.v_heads);
    }
  } else {
    if (g.v_heads != g.k_heads || g.q_heads % g.k_heads != 0) {
      return fmt::format("q_heads {} must be a multiple of k_heads {} = v_heads {}", g.q_heads,
                         g.k_heads, g.v_heads);
    }
  }
  if (kind == AttentionKind::diff_v2) {
    if (g.q_heads % 2 != 0 || (g.q_heads / g.k_heads) % 2 != 0) {
      return fmt::format(
          "q_heads {} must be even with an even number per kv head (k_heads {}), so the two "
          "heads of a pair share a kv head",
          g.q_heads, g.k_heads);
    }
    if (kernels != AttentionKernels::sm90) {
      return "the fused V2 forward needs the sm90 kernels (a Hopper GPU, without "
             "DIFFTX_ATTENTION_KERNELS=mma)";
    }
  }
  if (!std::isfinite(g.scale) || g.scale <= 0.0) {
    return fmt::format("scale {} must be positive", g.scale);
  }
  std::string s =
      stride_problem(g.q_row_stride, std::int64_t(g.q_heads) * g.head_dim, "q_row_stride");
  if (s.empty()) {
    s = stride_problem(g.kv_row_stride_k, std::int64_t(g.k_heads) * g.head_dim, "kv_row_stride_k");
  }
  if (s.empty()) {
    s = stride_problem(g.kv_row_stride_v, std::int64_t(g.v_heads) * dv, "kv_row_stride_v");
  }
  return s;
}

}  // namespace

const char* attention_kind_name(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::softmax:
      return "softmax";
    case AttentionKind::diff_v1:
      return "diff_v1";
    case AttentionKind::diff_v2:
      return "diff_v2";
  }
  return "?";
}

AttentionPlan AttentionPlan::make(const AttentionGeometry& g, AttentionKind kind,
                                  AttentionKernels kernels) {
  const std::string problem = geometry_problem(g, kind, kernels);
  if (!problem.empty()) fail("CUDA {} attention: {}", attention_kind_name(kind), problem);
  return AttentionPlan(g, kind, kernels);
}

std::optional<AttentionPlan> AttentionPlan::try_make(const AttentionGeometry& g, AttentionKind kind,
                                                     AttentionKernels kernels) {
  if (!geometry_problem(g, kind, kernels).empty()) return std::nullopt;
  return AttentionPlan(g, kind, kernels);
}

}  // namespace difftx::cuda
