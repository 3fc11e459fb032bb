// Running an op case on a backend (see op_run.h).
#include "op_run.h"

#include <fmt/format.h>

#include <cmath>
#include <random>

#include "guarded.h"
#include "op_compare.h"

namespace difftx::testing {
namespace {

// Values for one spec: drawn, rounded to its precision, planted, then (with a rounding dtype)
// rounded to it and to f32, so the device under test and the naive f32 backend hold the same
// numbers.
Tensor draw(const TensorSpec& s, std::mt19937_64& rng, std::optional<DType> dtype) {
  std::vector<double> v(static_cast<std::size_t>(shape_numel(s.shape)));
  if (s.role == Role::ids) {
    std::uniform_int_distribution<int> dist(0, s.id_range - 1);
    for (auto& x : v) x = dist(rng);
  } else {
    std::normal_distribution<double> dist(0.0, 1.0);
    for (auto& x : v) {
      x = s.offset + s.scale * dist(rng);
      if (s.precision) x = round_to(*s.precision, x);
    }
  }
  if (s.plant) s.plant(v);
  Tensor t = Tensor::empty(s.shape, s.role == Role::ids ? DType::i32 : DType::f64);
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (s.role == Role::ids) {
      t.data<std::int32_t>()[i] = static_cast<std::int32_t>(v[i]);
    } else {
      t.data<double>()[i] = dtype ? round_to(DType::f32, round_to(*dtype, v[i])) : v[i];
    }
  }
  return t;
}

std::optional<DType> rounding_dtype(const Backend* b, const TensorSpec& s) {
  if (b == nullptr) return std::nullopt;
  return dtype_for(*b, s);
}

// A guarded tensor of `spec` on b holding `values` (or poisoned when they are undefined).
GuardedTensor place(Backend& b, const OpCase& c, const TensorSpec& spec, const Tensor& values) {
  GuardedTensor g(b, spec.shape, dtype_for(b, spec), c.offset);
  if (values.defined()) {
    const DType d = dtype_for(b, spec);
    g.view().copy_from(values.dtype() == d ? values : values.to_dtype(d));
  }
  return g;
}

// Bitwise (NaN-aware) equality of a tensor with the values it was given.
bool unchanged(const Tensor& t, const Tensor& given) {
  const std::vector<double> a = t.to_double_vector();
  const std::vector<double> b = given.to_dtype(t.dtype()).to_double_vector();
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  }
  return true;
}

struct Placed {
  std::vector<GuardedTensor> guarded;
  std::vector<std::string> labels;

  Tensors views() {
    Tensors v;
    for (auto& g : guarded) v.push_back(g.view());
    return v;
  }
};

void check_guards(const Placed& p, const char* kind, const char* phase,
                  std::vector<std::string>& problems) {
  for (std::size_t i = 0; i < p.guarded.size(); ++i) {
    const std::int64_t damaged = p.guarded[i].damaged_guards();
    if (damaged > 0) {
      problems.push_back(fmt::format("{} {} ({}): {} guard elements overwritten by the {}", kind, i,
                                     p.labels[i], damaged, phase));
    }
  }
}

Tensors host_copies(const Placed& p) {
  Tensors out;
  for (const auto& g : p.guarded) out.push_back(g.view().to(Device::cpu));
  return out;
}

}  // namespace

std::uint64_t case_seed(std::uint64_t base, const std::string& name) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return base ^ h;
}

CaseValues draw_values(const OpCase& c, std::uint64_t seed, const Backend* rounding) {
  std::mt19937_64 rng(seed);
  CaseValues v;
  for (const auto& s : c.inputs) v.inputs.push_back(draw(s, rng, rounding_dtype(rounding, s)));
  for (const auto& s : c.outputs) {
    v.outputs.push_back(s.write == Write::accumulate ? draw(s, rng, rounding_dtype(rounding, s))
                                                     : Tensor());
  }
  for (const auto& s : c.grads) {
    v.grads.push_back(s.write == Write::accumulate ? draw(s, rng, rounding_dtype(rounding, s))
                                                   : Tensor());
  }
  std::normal_distribution<double> dist(0.0, 1.0);
  for (const auto& s : c.outputs) {
    const std::optional<DType> d = rounding_dtype(rounding, s);
    Tensor t = Tensor::empty(s.shape, DType::f64);
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      const double w = !s.in_loss ? 0.0 : c.dout_value ? *c.dout_value : dist(rng);
      t.data<double>()[i] = d ? round_to(DType::f32, round_to(*d, w)) : w;
    }
    v.douts.push_back(t);
  }
  return v;
}

RunResult run_case(const OpCase& c, Backend& b, const CaseValues& v, bool with_backward) {
  with_backward = with_backward && static_cast<bool>(c.backward);
  RunResult r;
  Placed in, out, dout, grads;
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    in.guarded.push_back(place(b, c, c.inputs[i], v.inputs[i]));
    in.labels.push_back(c.inputs[i].label);
  }
  for (std::size_t k = 0; k < c.outputs.size(); ++k) {
    out.guarded.push_back(place(b, c, c.outputs[k], v.outputs[k]));
    out.labels.push_back(c.outputs[k].label);
  }
  Tensors in_views = in.views(), out_views = out.views();
  c.forward(b, in_views, out_views);
  check_guards(in, "input", "forward", r.problems);
  check_guards(out, "output", "forward", r.problems);
  if (with_backward) {
    for (std::size_t k = 0; k < c.outputs.size(); ++k) {
      dout.guarded.push_back(place(b, c, c.outputs[k], v.douts[k]));
      dout.labels.push_back("d" + c.outputs[k].label);
    }
    for (std::size_t g = 0; g < c.grads.size(); ++g) {
      grads.guarded.push_back(place(b, c, c.grads[g], v.grads[g]));
      grads.labels.push_back(c.grads[g].label);
    }
    Tensors dout_views = dout.views(), grad_views = grads.views();
    c.backward(b, in_views, out_views, dout_views, grad_views);
    check_guards(in, "input", "backward", r.problems);
    check_guards(out, "output", "backward", r.problems);
    check_guards(dout, "output gradient", "backward", r.problems);
    check_guards(grads, "backward output", "backward", r.problems);
    for (std::size_t k = 0; k < c.outputs.size(); ++k) {
      if (!unchanged(dout.guarded[k].view(), v.douts[k])) {
        r.problems.push_back(fmt::format("output gradient {} ({}) was written", k, dout.labels[k]));
      }
    }
    r.grads = host_copies(grads);
  }
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    if (!unchanged(in.guarded[i].view(), v.inputs[i])) {
      r.problems.push_back(fmt::format("input {} ({}) was written", i, in.labels[i]));
    }
  }
  r.inputs = host_copies(in);
  r.outputs = host_copies(out);
  return r;
}

}  // namespace difftx::testing
