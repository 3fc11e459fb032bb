// The catalogue of the backend-ops harness (see op_cases.h): small cases with odd shapes that
// both suites run, then the sweeps (odd sizes 1, 5, 7, 13; GQA ratios; decode offsets; the
// kernels' block, pack and thread-count boundaries; aligned and misaligned views; every dtype
// an op takes). Cases too large for finite differences run in the device suite only.
#include "op_cases.h"

#include <algorithm>

#include "case_builders.h"

namespace difftx::testing {

TensorSpec act(std::string label, Shape shape) {
  TensorSpec s;
  s.label = std::move(label);
  s.shape = std::move(shape);
  s.role = Role::act;
  return s;
}

TensorSpec weight(std::string label, Shape shape) {
  TensorSpec s = act(std::move(label), std::move(shape));
  s.role = Role::weight;
  return s;
}

TensorSpec param(std::string label, Shape shape) {
  TensorSpec s = act(std::move(label), std::move(shape));
  s.role = Role::param;
  return s;
}

TensorSpec stat(std::string label, Shape shape) {
  TensorSpec s = act(std::move(label), std::move(shape));
  s.role = Role::stat;
  return s;
}

TensorSpec ids(std::string label, Shape shape, int range) {
  TensorSpec s = act(std::move(label), std::move(shape));
  s.role = Role::ids;
  s.id_range = range;
  return s;
}

DType dtype_for(const Backend& b, const TensorSpec& spec) {
  if (spec.role == Role::ids) return DType::i32;
  if (b.device() != Device::cpu && spec.device_dtype) return *spec.device_dtype;
  switch (spec.role) {
    case Role::act:
    case Role::weight:
      return b.act_dtype();
    case Role::param:
    case Role::stat:
    case Role::ids:
      break;
  }
  return b.param_dtype();
}

std::size_t OpCase::gradient_count() const {
  return static_cast<std::size_t>(
      std::count_if(inputs.begin(), inputs.end(), [](const TensorSpec& s) { return s.has_grad; }));
}

namespace {

// Finite differences run the forward twice per checked element (up to 48 per input): cases
// with more elements than this run in the device suite only.
constexpr std::int64_t kCpuSuiteElements = std::int64_t(1) << 15;

std::int64_t elements(const OpCase& c) {
  std::int64_t n = 0;
  for (const auto* list : {&c.inputs, &c.outputs, &c.grads}) {
    for (const auto& s : *list) n += shape_numel(s.shape);
  }
  return n;
}

// The small cases both suites run: odd shapes, GQA, decode-style offsets.
void add_shared(std::vector<OpCase>& v) {
  v.push_back(embedding_case(7, 11, 5, DType::f32, DType::bf16));
  v.push_back(embedding_case(13, 5, 7, DType::bf16, DType::bf16));
  // rows of whole 16-byte chunks of one type: the CUDA copy kernel (one, two and five chunks a
  // thread)
  v.push_back(embedding_case(6, 9, 64, DType::bf16, DType::bf16));
  v.push_back(embedding_case(3, 7, 264, DType::f32, DType::f32));
  v.push_back(embedding_case(2, 3, 4112, DType::bf16, DType::bf16));
  v.push_back(rmsnorm_case(5, 13, Gain::f32, 1.0));
  v.push_back(rmsnorm_case(7, 8, Gain::none, 0.8));
  v.push_back(rmsnorm_case(3, 16, Gain::f32, 0.2));
  v.push_back(linear_case({5, 7, 11}));
  v.push_back(linear_case({13, 5, 7, true}));
  v.push_back(rope_case(1, 7, 2, 6, 0, RopeStyle::half_split, 3));
  v.push_back(rope_case(1, 5, 2, 4, 3, RopeStyle::interleaved, 13));
  v.push_back(swiglu_case(5, 13, 1.0));
  v.push_back(softmax_attention_case({2, 5, 5, 0, 2, 2, 4}));    // MHA
  v.push_back(softmax_attention_case({1, 7, 7, 0, 4, 2, 6}));    // GQA
  v.push_back(softmax_attention_case({1, 3, 8, 5, 2, 1, 4}));    // decode-style offset
  v.push_back(softmax_attention_case({1, 1, 13, 12, 4, 1, 4}));  // one query, GQA 4
  v.push_back(diff_attention_case({2, 5, 5, 0, 2, 2, 4}));       // MHA
  v.push_back(diff_attention_case({1, 7, 7, 0, 4, 2, 4}));       // GQA n_rep = 2
  v.push_back(diff_attention_case({1, 2, 6, 4, 2, 1, 6}));       // decode-style offset, GQA
  v.push_back(diff_lambda_case(6, DType::f32, 0.2, 0.3));
  v.push_back(v2_combine_case(5, 3, 4));
  // head dim 64: the size the CUDA kernels take, so these also run on the GPU
  v.push_back(diff_v2_attention_case({2, 9, 9, 0, 2, 1, 64}));   // GQA: one kv head per 4 queries
  v.push_back(diff_v2_attention_case({1, 3, 11, 8, 2, 2, 64}));  // decode-style offset, MHA pairs
  v.push_back(cross_entropy_case(5, 11, DType::bf16, 2.0, 1.0, false));
  v.push_back(convert_case(13, DType::f32, DType::bf16, 64, false));
  v.push_back(convert_case(5, DType::bf16, DType::f32, 1, false));
  // evaluation probes: materialized attention of each kind, quantization, softmax, KL
  for (ProbeCombine pc : {ProbeCombine::diff_v1, ProbeCombine::diff_v2, ProbeCombine::softmax}) {
    const AttentionShape odd = pc == ProbeCombine::diff_v2 ? AttentionShape{2, 5, 5, 0, 2, 1, 4}
                                                           : AttentionShape{1, 7, 7, 0, 4, 2, 6};
    v.push_back(probe_scores_case(pc, odd));
    v.push_back(probe_scores_case(pc, {1, 3, 8, 5, 2, 1, 4}));  // decode-style offset
    v.push_back(probe_probs_value_case(pc, odd));
    v.push_back(probe_probs_value_case(pc, {1, 3, 8, 5, 2, 1, 4}));
  }
  v.push_back(probe_quantize_case({1, 7, 7, 0, 4, 2, 4}, 8, false));
  v.push_back(probe_quantize_case({1, 7, 7, 0, 4, 2, 4}, 4, true));
  v.push_back(probe_quantize_case({2, 3, 9, 6, 2, 1, 4}, 6, false));
  v.push_back(probe_softmax_case({2, 3, 9, 6, 3, 3, 4}, false));
  v.push_back(probe_softmax_case({1, 7, 7, 0, 2, 1, 4}, true));
  v.push_back(probe_kl_case(5, 11, DType::bf16));
}

// The sweeps; the large shapes run in the device suite only (see kCpuSuiteElements).
void add_sweeps(std::vector<OpCase>& v) {
  // memory helpers: every dtype, sizes around the 16-byte packs, misaligned views
  for (DType d : {DType::f32, DType::bf16, DType::f64, DType::i32}) {
    for (std::int64_t n : {1, 7, 1001, 70001}) v.push_back(fill_case(n, d, 3));
  }
  const std::pair<DType, DType> conversions[] = {
      {DType::f32, DType::bf16}, {DType::bf16, DType::f32}, {DType::f32, DType::f64},
      {DType::f64, DType::f32},  {DType::f64, DType::bf16}, {DType::f32, DType::f32}};
  for (auto [from, to] : conversions) {
    for (std::int64_t offset : {64, 1}) v.push_back(convert_case(4099, from, to, offset, true));
  }
  for (DType d : {DType::bf16, DType::f32, DType::f64}) {
    for (std::int64_t n : {1, 7, 4099, 100003}) {
      for (std::int64_t offset : {64, 1}) v.push_back(add_case(n, d, offset));
    }
  }
  // embedding: the exact gather for each table / output dtype; the scatter-add with long runs
  // of equal ids (few ids over many positions), many ids, and a single one
  for (DType table : {DType::f32, DType::bf16}) {
    for (DType out : {DType::bf16, DType::f32})
      v.push_back(embedding_case(515, 1001, 771, table, out));
  }
  v.push_back(embedding_case(1000, 7, 65, DType::f32, DType::bf16));
  v.push_back(embedding_case(4099, 5003, 256, DType::f32, DType::bf16));
  v.push_back(embedding_case(1, 3, 1, DType::f32, DType::bf16));
  // RMSNorm: warp-per-row and block-per-row widths, up to a 64 KiB dweight accumulator
  const std::pair<int, int> norms[] = {{1, 5}, {7, 13}, {33, 1024}, {130, 4096}, {3, 16384}};
  for (auto [n, ch] : norms) {
    for (Gain gain : {Gain::none, Gain::f32, Gain::bf16}) {
      for (double scale : {1.0, 0.8}) v.push_back(rmsnorm_case(n, ch, gain, scale));
    }
  }
  // linear: odd shapes; 128-byte aligned views; a view 2 bytes off alignment; the f32 path
  const LinearShape linears[] = {{7, 13, 5},      {1, 16, 3},       {64, 128, 96},
                                 {33, 1000, 257}, {512, 1024, 768}, {17, 64, 40, false, 1}};
  for (LinearShape s : linears) {
    for (bool accumulate : {false, true}) {
      s.accumulate_dx = accumulate;
      v.push_back(linear_case(s));
    }
  }
  v.push_back(linear_case({9, 31, 17, false, 64, DType::f32, 0.2, 0.0}));
  // RoPE: both styles, positions past 4K and 1M, row padding the op must leave alone
  struct Rope {
    int batch, seq, heads, d, pad;
  };
  for (Rope r : {Rope{2, 5, 3, 8, 0}, Rope{1, 33, 4, 64, 8}, Rope{2, 17, 2, 128, 3}}) {
    for (RopeStyle style : {RopeStyle::interleaved, RopeStyle::half_split}) {
      for (int pos : {0, 4097, 1000000}) {
        v.push_back(rope_case(r.batch, r.seq, r.heads, r.d, r.pad, style, pos));
      }
    }
  }
  for (int f : {1, 1001, 65537}) v.push_back(swiglu_case(1, f, 4.0));
  for (int d : {13, 64, 128}) {
    for (DType vd : {DType::f32, DType::bf16}) v.push_back(diff_lambda_case(d, vd, 0.35, 0.15));
  }
  v.push_back(v2_combine_case(7, 3, 13));
  v.push_back(v2_combine_case(64, 4, 64));
  v.push_back(v2_combine_case(5, 16, 128));
  // cross-entropy: 32000 and 128256 take the 16-byte path, 1001 and 50257 the element path;
  // 128, 512 and 1024 threads per row; dlogits in place of the logits
  struct Loss {
    int n, vocab;
    DType dtype;
  };
  for (Loss l :
       {Loss{7, 1001, DType::bf16}, Loss{16, 32000, DType::bf16}, Loss{5, 50257, DType::bf16},
        Loss{3, 128256, DType::bf16}, Loss{6, 1000, DType::f32}}) {
    for (bool alias : {false, true}) {
      v.push_back(cross_entropy_case(l.n, l.vocab, l.dtype, 3.0, 1.0 / l.n, alias));
    }
  }
  // optimizer support
  for (DType d : {DType::f32, DType::bf16, DType::f64}) {
    for (std::int64_t n : {0, 1, 1001, 3000001}) v.push_back(sum_of_squares_case(n, d));
    v.push_back(scale_case(70001, d, 0.37, 5));
  }
  for (std::int64_t n : {1, 1001, 100003}) v.push_back(adamw_case(n));
  // attention at d = 64 and 128: GQA ratios 1, 2, 4; query lengths around the 64- and 128-row
  // tiles; decode (one query over a long cache) and chunked-prefill offsets
  const AttentionShape softmax[] = {{2, 37, 37, 0, 4, 2, 64},   {1, 5, 70, 65, 2, 1, 64},
                                    {1, 64, 64, 0, 4, 1, 64},   {1, 65, 65, 0, 2, 2, 128},
                                    {2, 129, 129, 0, 4, 2, 64}, {1, 1, 513, 512, 4, 1, 128}};
  for (const auto& s : softmax) v.push_back(softmax_attention_case(s));
  const AttentionShape diff[] = {{2, 37, 37, 0, 2, 1, 64},   {1, 3, 40, 37, 2, 2, 64},
                                 {1, 64, 64, 0, 4, 1, 64},   {1, 65, 65, 0, 2, 2, 128},
                                 {2, 129, 129, 0, 2, 1, 64}, {1, 1, 257, 256, 2, 1, 128}};
  for (const auto& s : diff) v.push_back(diff_attention_case(s));
  const AttentionShape v2[] = {{1, 64, 64, 0, 2, 1, 64},
                               {1, 65, 65, 0, 4, 2, 128},
                               {2, 129, 129, 0, 2, 2, 64},
                               {1, 1, 300, 299, 2, 1, 64}};
  for (const auto& s : v2) v.push_back(diff_v2_attention_case(s));
  // evaluation probes at the model's sizes: head dims 64 and 128 (value 256 for DIFF V1), rows
  // longer than a block, decode offsets, batches
  const AttentionShape probes[] = {
      {1, 129, 129, 0, 2, 1, 64}, {2, 37, 300, 263, 2, 2, 128}, {1, 1, 513, 512, 4, 2, 64}};
  for (const auto& s : probes) {
    for (ProbeCombine pc : {ProbeCombine::diff_v1, ProbeCombine::diff_v2, ProbeCombine::softmax}) {
      v.push_back(probe_scores_case(pc, s));
      v.push_back(probe_probs_value_case(pc, s));
    }
    v.push_back(probe_quantize_case(s, 4, false));
    v.push_back(probe_softmax_case(s, true));
  }
  for (int vocab : {1001, 50304}) v.push_back(probe_kl_case(4, vocab, DType::bf16));
  v.push_back(probe_kl_case(3, 1000, DType::f32));
}

std::vector<OpCase> build_catalogue() {
  std::vector<OpCase> v;
  add_shared(v);
  add_sweeps(v);
  for (auto& c : v) {
    if (elements(c) > kCpuSuiteElements) c.suites &= ~unsigned(kCpuSuite);
  }
  return v;
}

}  // namespace

const std::vector<OpCase>& op_cases(Suite suite) {
  static const std::vector<OpCase> all = build_catalogue();
  static const std::vector<OpCase> cpu = [] {
    std::vector<OpCase> v;
    for (const auto& c : all) {
      if (c.suites & kCpuSuite) v.push_back(c);
    }
    return v;
  }();
  static const std::vector<OpCase> device = [] {
    std::vector<OpCase> v;
    for (const auto& c : all) {
      if (c.suites & kDeviceSuite) v.push_back(c);
    }
    return v;
  }();
  return suite == kCpuSuite ? cpu : device;
}

}  // namespace difftx::testing
