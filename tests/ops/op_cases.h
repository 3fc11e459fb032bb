// The backend-ops test harness: one OpCase per Backend op (odd shapes included). A case builds
// random inputs, runs the op's forward and backward on any backend, and is checked
//   - on the CPU in fp64 against central finite differences (test_ops_gradcheck.cpp), and
//   - on CUDA against the CPU oracle (tests/cuda).
// Scalar objective for gradients: L = sum_k <w_k, out_k> with fixed random w_k, so the backward
// receives dout_k = w_k and must return dL/d(input) for every differentiable input.
#pragma once

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "difftx/model/backend.h"

namespace difftx::testing {

// How an input or output is typed on a backend.
enum class Role {
  act,     // activation dtype (bf16 on CUDA)
  weight,  // a matrix the model passes as a compute copy: activation dtype
  param,   // parameter dtype (1-D gains, lambda vectors), fp32 on CUDA
  stat,    // statistics: parameter dtype
  ids,     // i32 token ids / targets
};

struct TensorSpec {
  Shape shape;
  Role role;
  bool differentiable = false;
  // For ids: values drawn in [0, id_range); for floats: Normal(0, scale) + offset.
  int id_range = 0;
  double scale = 1.0;
  double offset = 0.0;
};

struct OpCase {
  std::string name;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  // Runs the forward: fills outputs from inputs. Tensors are on the backend's device/dtypes.
  std::function<void(Backend&, const std::vector<Tensor>& in, std::vector<Tensor>& out)> forward;
  // Runs the backward: given inputs, forward outputs and douts (one per output), returns one
  // gradient per differentiable input (in order), freshly allocated on the backend.
  std::function<std::vector<Tensor>(Backend&, const std::vector<Tensor>& in,
                                    const std::vector<Tensor>& out, const std::vector<Tensor>& dout)>
      backward;
  // Outputs excluded from the objective (e.g. saved statistics whose gradient is not propagated).
  std::vector<bool> output_in_loss;
  // The backward takes no per-element output weights (fused cross-entropy): the objective then
  // weights every counted output with 1.
  bool unit_output_weights = false;
};

// Every op case of the harness (the probe cases included).
std::vector<OpCase> all_op_cases();
// The evaluation probes' forward-only cases (probe_op_cases.cpp).
std::vector<OpCase> probe_op_cases();

// Host f64 random inputs for a case (seeded).
std::vector<Tensor> make_host_inputs(const OpCase& c, std::uint64_t seed);
// Converts a host f64/i32 tensor to the backend's device and the dtype of `role`.
Tensor to_backend(Backend& b, const Tensor& host, Role role);
// Allocates an output for `spec` on the backend.
Tensor alloc_on(Backend& b, const TensorSpec& spec);
DType dtype_for(const Backend& b, Role role);

}  // namespace difftx::testing
