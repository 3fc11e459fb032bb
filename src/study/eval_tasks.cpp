// A study run's needle, outlier and logit-quantization measurements through the eval library
// (see eval_tasks.h).
#include "difftx/study/eval_tasks.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/eval/context.h"
#include "difftx/eval/held_out.h"
#include "difftx/eval/models.h"
#include "difftx/eval/needle.h"
#include "difftx/eval/outliers.h"
#include "difftx/eval/quant.h"

namespace difftx::study {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kNeedlesFile = "needles.json";

// Held-out cities and the digits of the numbers, from the data set's needles.json.
struct NeedleKeys {
  std::vector<std::string> cities;
  int digits = 0;
};

NeedleKeys read_needle_keys(const fs::path& dir) {
  const fs::path file = dir / kNeedlesFile;
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    fail("data folder '{}' has no {}: make it with `difftx data synth needle-mix`", dir.string(),
         kNeedlesFile);
  }
  NeedleKeys k;
  try {
    const json j = json::parse(read_file_text(file));
    k.cities = j.at("test_cities").get<std::vector<std::string>>();
    k.digits = j.at("digits").get<int>();
  } catch (const json::exception& e) {
    fail("{}: not a needle-mix needles.json ({}): make the data set again", file.string(),
         e.what());
  }
  if (k.cities.empty()) {
    fail("{}: no test_cities: make the data set again with --test-cities >= 1", file.string());
  }
  return k;
}

// The validation sentences a haystack may use: those of needle-mix documents that are neither
// a needle nor a question (both hold the template's "special magic").
std::vector<std::string> haystack_sentences(const eval::HeldOutText& text) {
  std::vector<std::string> out;
  for (std::string& s : text.sentences()) {
    if (s.find("special magic") == std::string::npos) out.push_back(std::move(s));
  }
  return out;
}

double number_or_nan(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j.at(key).is_number() ? j.at(key).get<double>() : NAN;
}

// Only finite values become metrics (a summary over no values has nulls).
void put(std::map<std::string, double>& metrics, const std::string& key, double v) {
  if (std::isfinite(v)) metrics[key] = v;
}

void needle_metrics(const NeedleEvalSpec& spec, const eval::HeldOutText& text,
                    const fs::path& data_dir, eval::EvalModel& model, const eval::EvalContext& ctx,
                    EvalTaskResults& out) {
  const NeedleKeys keys = read_needle_keys(data_dir);
  eval::NeedleOptions o;
  o.configs = eval::parse_needle_configs(spec.configs);
  o.depths = spec.depths;
  o.lengths = spec.lengths;
  o.samples = spec.samples;
  o.digits = keys.digits;
  o.keys = keys.cities;
  o.allocation = false;
  const std::vector<std::string> sentences = haystack_sentences(text);
  if (sentences.empty()) {
    fail("data folder '{}': its validation split has no sentence for a needle haystack",
         data_dir.string());
  }
  const json r = eval::run_needle(model, sentences, o, ctx);
  for (const int length : spec.lengths) {
    double sum = 0;
    int cells = 0;
    for (const json& c : r.at("cells")) {
      if (c.at("length").get<int>() != length) continue;
      sum += c.at("accuracy").get<double>();
      ++cells;
    }
    DIFFTX_CHECK(cells > 0, "internal: eval needle measured no cell of length {}", length);
    out.metrics[fmt::format("needle_accuracy_{}", length)] = sum / cells;
  }
  json details = r;
  details["options"] = o.to_json();
  details["haystack_sentences"] = sentences.size();
  out.details["needle"] = details;
}

void outlier_metrics(const OutlierEvalSpec& spec, const eval::HeldOutText& text, int seq_len,
                     eval::EvalModel& model, const eval::EvalContext& ctx, EvalTaskResults& out) {
  eval::OutlierOptions o;
  o.tokens = spec.tokens;
  o.context = spec.context > 0 ? spec.context : seq_len;
  o.batch = spec.batch;
  const json r = eval::run_outliers(model, text, o, ctx);
  for (const auto& [kind, prefix] : {std::pair{"logits", "logit"}, std::pair{"hidden", "hidden"}}) {
    const json& s = r.at(kind);
    put(out.metrics, fmt::format("{}_top1", prefix), number_or_nan(s, "top1"));
    put(out.metrics, fmt::format("{}_top1_over_median", prefix),
        number_or_nan(s, "top1_over_median"));
  }
  out.details["outliers"] = r;
}

void quant_metrics(const QuantEvalSpec& spec, const eval::HeldOutText& text, int seq_len,
                   eval::EvalModel& model, const eval::EvalContext& ctx, EvalTaskResults& out) {
  eval::QuantOptions o;
  o.bits = spec.bits;
  o.per_head = spec.per_head;
  o.tokens = spec.tokens;
  o.context = spec.context > 0 ? spec.context : seq_len;
  o.batch = spec.batch;
  const json r = eval::run_quant(model, text, o, ctx);
  for (const json& p : r.at("points")) {
    const int bits = p.at("bits").get<int>();
    put(out.metrics, fmt::format("quant_loss_b{}", bits), number_or_nan(p, "loss"));
    if (bits >= 16) continue;
    put(out.metrics, fmt::format("quant_delta_b{}", bits), number_or_nan(p, "delta_loss"));
    put(out.metrics, fmt::format("quant_kl_b{}", bits), number_or_nan(p, "kl"));
  }
  out.details["quant_logits"] = r;
}

}  // namespace

bool wants_eval_tasks(const EvaluationSpec& e) {
  return e.needle.enabled || e.outliers.enabled || e.quant_logits.enabled;
}

EvalTaskResults run_eval_tasks(const EvaluationSpec& e, const fs::path& checkpoint,
                               const DatasetInfo& data, int seq_len, Backend& backend,
                               const std::string& device, ProgressMode progress) {
  EvalTaskResults out;
  if (!wants_eval_tasks(e)) return out;
  std::vector<eval::EvalModel> models = eval::load_eval_models({checkpoint.string()}, backend);
  eval::EvalModel& model = models.front();
  eval::HeldOutSource source;
  source.data = data.dir;
  const eval::HeldOutText text = eval::HeldOutText::load(source);
  eval::EvalContext ctx;
  ctx.backend = &backend;
  ctx.device = device;
  ctx.seed = e.eval_seed;
  ctx.progress = progress;
  if (e.needle.enabled) needle_metrics(e.needle, text, data.dir, model, ctx, out);
  if (e.outliers.enabled) outlier_metrics(e.outliers, text, seq_len, model, ctx, out);
  if (e.quant_logits.enabled) quant_metrics(e.quant_logits, text, seq_len, model, ctx, out);
  return out;
}

}  // namespace difftx::study
