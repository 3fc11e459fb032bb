// Comparisons of the device suite: a backend's result against the CPU oracle. Every output is
// run through
//   - the CPU backend in f64: the reference ("truth"),
//   - the CPU backend in f32 with its outputs rounded to the device output dtype: a naive
//     implementation (exact inputs, f32-or-better arithmetic, one rounding of each output),
//   - the backend under test,
// on the same inputs (rounded once to the device dtypes), and must satisfy
//   relL2(device, ref) <= 2 * relL2(naive, ref) + floor,   relL2(x, r) = ||x - r|| / ||r||.
// The naive error of a bf16 output is its unavoidable rounding error (~2^-9 relative); any wrong
// index, missing term or lost precision in an intermediate shows up as an error well over twice
// that. Floors (only binding where the naive error is ~0):
//   - bf16 outputs: 1e-4, 1/20 of bf16's half-ulp 2^-9 = 2e-3, so no real error hides under it;
//   - f32 outputs:  2e-5, what an f32 accumulation of a few thousand terms in another order can
//     differ by (~sqrt(K) * 2^-24 with K ~ 4096 gives 4e-6; 5x margin). The f32 naive is
//     computed in f64 inside the CPU backend, so its own error is one f32 rounding (~3e-8);
//   - attention outputs and gradients (kFloorAttention): the kernels round P and dS to bf16
//     before their products, so their error is not the output-rounding error of the naive
//     model used here; tests/cuda/test_attention_kernels checks their accuracy against a
//     modelled naive bf16 attention. Here the backend's wiring of them is checked: 2e-2 sits
//     well above bf16 P/dS rounding (~3e-3 relative) and far below the O(1) error of a wrong
//     pointer, stride, head mapping or workspace.
// Each check returns "" when it holds, else one message naming what failed and by how much.
#pragma once

#include <string>
#include <vector>

#include "difftx/core/tensor.h"

namespace difftx::testing {

constexpr double kFloorBf16 = 1e-4;
constexpr double kFloorF32 = 2e-5;
constexpr double kFloorAttention = 2e-2;

// v rounded to dtype d (bf16: round to nearest even through f32; i32: truncation), as f64.
double round_to(DType d, double v);

double rel_l2(const std::vector<double>& x, const std::vector<double>& r);

// The measured errors of one budget check.
struct BudgetStats {
  double e_device = 0, e_naive = 0, limit = 0;
};

// The budget rule above; floor < 0 picks the dtype's floor. Non-finite device values fail.
std::string budget_failure(const std::string& what, const Tensor& device, const Tensor& ref,
                           const Tensor& naive, double floor = -1, BudgetStats* stats = nullptr);

// device == want element for element (NaN equals NaN).
std::string equality_failure(const std::string& what, const Tensor& device,
                             const std::vector<double>& want);

// device == ref rounded to the device dtype, element for element.
std::string exact_failure(const std::string& what, const Tensor& device, const Tensor& ref);

}  // namespace difftx::testing
