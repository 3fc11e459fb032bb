// Running an op case on a backend: the values of a run (drawn once per case and seed, so every
// backend sees the same numbers) and one run with every tensor in a guarded buffer, its guards
// and its read-only tensors checked after the forward and after the backward.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "op_cases.h"

namespace difftx::testing {

// Host values of one run: f64 tensors (i32 for ids), shaped like their specs.
struct CaseValues {
  Tensors inputs;
  Tensors outputs;  // start values of accumulated outputs; undefined for overwritten ones
  Tensors grads;    // same for the backward's outputs
  Tensors douts;    // one per output: Normal(0, 1) (or the case's dout_value) in the loss, else 0
};

// Draws the values of a case from `seed`. With `rounding`, every value is rounded to the dtype
// its tensor has on that backend (the device under test), so all backends see the same numbers.
CaseValues draw_values(const OpCase& c, std::uint64_t seed, const Backend* rounding = nullptr);

// A stable seed for a case: base mixed with the case's name (FNV-1a).
std::uint64_t case_seed(std::uint64_t base, const std::string& name);

// Host copies of everything one run wrote, and what went wrong outside the values themselves.
struct RunResult {
  Tensors inputs, outputs, grads;  // after the run, in the backend's dtypes, on the host
  // Damaged guards, changed inputs or output gradients, one message each.
  std::vector<std::string> problems;
};

// Runs the case's forward on b (and its backward, when with_backward and the case has one).
RunResult run_case(const OpCase& c, Backend& b, const CaseValues& v, bool with_backward = true);

}  // namespace difftx::testing
