// The backend-ops test harness (in the style of ggml's test-backend-ops): one OpCase per Backend
// op and shape, shared by
//   - the CPU suite (test_ops_gradcheck.cpp): every backward against central finite differences
//     of its forward in fp64, and the fp32 backend against the fp64 one;
//   - the device suite (tests/cuda/test_cuda_backend_ops.cpp): CUDA against the CPU oracle.
// Every tensor of a run (inputs, output gradients, outputs, backward outputs) sits in a guarded
// buffer: sentinel elements before and after it that must survive the run (op_run.h). Outputs
// written with "=" start poisoned (NaN) and must come back written; outputs written with "+="
// (parameter gradients) start from random values, so an "=" where "+=" belongs shows. Shape
// sweeps (op_cases.cpp) cover odd sizes (1, 5, 7, 13), GQA ratios, decode offsets and the
// kernels' block boundaries.
//
// The objective for gradients is L = sum_k <dout_k, out_k> over the outputs in the loss, with
// fixed random dout_k: the backward receives dout_k and must return dL/d(input) for every input
// with a gradient.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "difftx/model/backend.h"

namespace difftx::testing {

// How a tensor is typed on a backend.
enum class Role {
  act,     // activation dtype (bf16 on CUDA)
  weight,  // a matrix the model passes as a compute copy: activation dtype
  param,   // parameter dtype (gains, lambda vectors, parameter gradients): f32 on CUDA
  stat,    // statistics (rstd, lse, losses, lambda): parameter dtype
  ids,     // i32 token ids / targets
};

// How an op writes an output.
enum class Write {
  overwrite,   // "=": starts poisoned (NaN); every element must be written
  accumulate,  // "+=" or read-modify-write: starts from values drawn like an input's
};

// How the device suite compares an output with the CPU oracle (op_compare.h).
enum class Check {
  budget,  // relL2(device, f64) <= 2 relL2(naive f32, f64) + floor
  exact,   // device == the f64 result rounded to the device dtype, element for element
  custom,  // only the case's own check (e.g. a sum whose terms cancel)
};

struct TensorSpec {
  std::string label;  // for messages: "x", "dweight", ...
  Shape shape;
  Role role = Role::act;
  bool has_grad = false;  // inputs: the backward writes this input's gradient
  // Drawn values: ids uniform in [0, id_range); floats Normal(offset, scale) (scale 0: the
  // constant offset), rounded to `precision` when set, then edited by `plant`.
  int id_range = 0;
  double scale = 1.0;
  double offset = 0.0;
  std::optional<DType> precision;
  std::function<void(std::vector<double>&)> plant;
  std::optional<DType> device_dtype;  // dtype on a non-CPU backend (default: by role)
  Write write = Write::overwrite;     // outputs
  Check check = Check::budget;        // outputs
  double floor = -1;                  // outputs, Check::budget: the floor (default: by dtype)
  bool in_loss = true;                // forward outputs: part of the objective L

  // Fluent edits, for the case builders.
  TensorSpec& with_grad() {
    has_grad = true;
    return *this;
  }
  TensorSpec& normal(double s, double o = 0.0) {
    scale = s;
    offset = o;
    return *this;
  }
  TensorSpec& rounded_to(DType d) {
    precision = d;
    return *this;
  }
  TensorSpec& on_device(DType d) {
    device_dtype = d;
    return *this;
  }
  TensorSpec& planted(std::function<void(std::vector<double>&)> f) {
    plant = std::move(f);
    return *this;
  }
  TensorSpec& accumulated() {
    write = Write::accumulate;
    return *this;
  }
  TensorSpec& checked(Check c) {
    check = c;
    return *this;
  }
  TensorSpec& with_floor(double f) {
    floor = f;
    return *this;
  }
  TensorSpec& outside_loss() {
    in_loss = false;
    return *this;
  }
};

TensorSpec act(std::string label, Shape shape);
TensorSpec weight(std::string label, Shape shape);
TensorSpec param(std::string label, Shape shape);
TensorSpec stat(std::string label, Shape shape);
TensorSpec ids(std::string label, Shape shape, int range);

// The suites a case runs in.
enum Suite : unsigned { kCpuSuite = 1, kDeviceSuite = 2 };

struct OpCase;
struct CaseValues;
struct RunResult;

// What a case's own check sees (device suite): one run on each backend, same values.
struct Comparison {
  const OpCase& c;
  const CaseValues& given;
  const RunResult& device;  // the backend under test
  const RunResult& ref;     // CPU f64: the reference
  const RunResult& naive;   // CPU f32: the naive implementation that sets the error budget
};

using Tensors = std::vector<Tensor>;

struct OpCase {
  std::string name;  // unique (the test's parameter name)
  std::string op;    // the op family ("rmsnorm"), for the error table
  unsigned suites = kCpuSuite | kDeviceSuite;
  // Elements between each tensor and the start of its guarded buffer (the front guard). 64
  // keeps every dtype 16-byte aligned; 1, 3, 5 give misaligned views.
  std::int64_t offset = 64;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;  // written by forward
  // Written by backward: the gradients of the inputs with has_grad, in input order, then any
  // other tensor it writes (e.g. the losses of the fused cross-entropy).
  std::vector<TensorSpec> grads;
  std::function<void(Backend&, const Tensors& in, Tensors& out)> forward;
  // Empty for ops without a backward.
  std::function<void(Backend&, const Tensors& in, const Tensors& out, const Tensors& dout,
                     Tensors& grads)>
      backward;
  // The backward takes one scalar weight for all outputs (fused cross-entropy): every output
  // in the loss then has this constant dout.
  std::optional<double> dout_value;
  // Device suite: a second run on the same values must give bit-identical results.
  bool deterministic = false;
  // Device suite: assertions beyond the per-output checks; returns one message per failure.
  std::function<std::vector<std::string>(const Comparison&)> check;

  std::size_t gradient_count() const;  // inputs with has_grad
};

// The cases of a suite (built once).
const std::vector<OpCase>& op_cases(Suite suite);

// dtype of a tensor of `spec` on backend b: by role, or the spec's device_dtype on a non-CPU
// backend.
DType dtype_for(const Backend& b, const TensorSpec& spec);

}  // namespace difftx::testing
