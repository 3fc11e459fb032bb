// The quant-logits task (quant.h): probe-path forwards at each width against the unquantized one.
#include "difftx/eval/quant.h"

#include <algorithm>
#include <cmath>

#include "difftx/core/error.h"
#include "difftx/model/probe.h"

namespace difftx::eval {

nlohmann::json QuantOptions::to_json() const {
  nlohmann::json j = {{"bits", bits},       {"per_head", per_head}, {"tokens", tokens},
                      {"context", context}, {"batch", batch},       {"task_needle", needle}};
  if (needle) j["needle"] = needle_options.to_json();
  return j;
}

nlohmann::json run_quant(EvalModel& m, const HeldOutText& text, const QuantOptions& o,
                         const EvalContext& ctx) {
  DIFFTX_CHECK(!o.bits.empty(), "--bits: give at least one width");
  for (int b : o.bits) {
    DIFFTX_CHECK(b >= 2 && b <= 16, "--bits {}: widths must be in [2, 16] (16 = unquantized)", b);
  }
  const int C = o.context > 0 ? o.context : m.config.max_seq_len;
  DIFFTX_CHECK(C >= 2 && C <= m.config.max_seq_len, "--context {} must be in [2, max_seq_len = {}]",
               C, m.config.max_seq_len);
  DIFFTX_CHECK(o.batch >= 1, "--batch must be >= 1, got {}", o.batch);
  nlohmann::json j = quant_statistics(m, text.tokens(m.tokenizer, o.tokens + 1).tokens, o.bits,
                                      o.per_head, C, o.batch, ctx);
  if (o.needle) {
    nlohmann::json needle = nlohmann::json::array();
    const std::vector<std::string> sentences = text.sentences();
    for (const auto& p : j["points"]) {
      NeedleOptions no = o.needle_options;
      no.allocation = false;
      no.quant.bits = p["bits"].get<int>();
      no.quant.per_head = o.per_head;
      const nlohmann::json r = run_needle(m, sentences, no, ctx);
      needle.push_back(
          {{"bits", no.quant.bits}, {"accuracy", r["accuracy"]}, {"by_config", r["by_config"]}});
    }
    j["needle"] = needle;
  }
  return j;
}

nlohmann::json quant_statistics(EvalModel& m, const std::vector<std::int32_t>& tokens,
                                const std::vector<int>& bits, bool per_head, int C, int batch,
                                const EvalContext& ctx) {
  const std::int64_t n = std::int64_t(tokens.size());
  DIFFTX_CHECK(n >= 2, "quant-logits: the held-out text gives {} tokens; at least 2 are needed", n);
  Backend& backend = *ctx.backend;
  ModelProbe probe(*m.model);
  std::vector<int> widths = bits;
  std::sort(widths.begin(), widths.end(), std::greater<int>());
  widths.erase(std::unique(widths.begin(), widths.end()), widths.end());
  std::vector<double> loss(widths.size(), 0.0), kl(widths.size(), 0.0);
  double fused = 0;
  std::uint64_t counted = 0;
  Progress progress("quant-logits " + m.label, double(n - 1), ctx.progress_options("tok"));
  // consecutive windows of C inputs, each predicting its next tokens (every target once)
  for (std::int64_t start = 0; start + 1 < n;) {
    const std::int64_t left = n - 1 - start;
    const int T = int(std::min<std::int64_t>(C, left));
    const int rows = T < C ? 1 : int(std::min<std::int64_t>(batch, left / C));
    Tensor inputs = Tensor::empty({rows, T}, DType::i32);
    std::vector<std::int32_t> targets(static_cast<std::size_t>(rows) * std::size_t(T));
    for (int r = 0; r < rows; ++r) {
      for (int t = 0; t < T; ++t) {
        const std::int64_t i = start + std::int64_t(r) * T + t;
        inputs.data<std::int32_t>()[std::int64_t(r) * T + t] = tokens[std::size_t(i)];
        targets[std::size_t(r) * std::size_t(T) + std::size_t(t)] = tokens[std::size_t(i + 1)];
      }
    }
    for (double x : token_nll(backend, probe.forward_logits(inputs), targets)) fused += x;
    ProbeOptions reference;  // 16 bits: unquantized
    Tensor ref_logits = probe.probe_logits(inputs, reference).clone();
    Tensor rows_kl =
        Tensor::empty({std::int64_t(targets.size())}, backend.param_dtype(), backend.device());
    for (std::size_t w = 0; w < widths.size(); ++w) {
      ProbeOptions q;
      q.quant.bits = widths[w];
      q.quant.per_head = per_head;
      const Tensor& logits = q.quant.enabled() ? probe.probe_logits(inputs, q) : ref_logits;
      for (double x : token_nll(backend, logits, targets)) loss[w] += x;
      if (q.quant.enabled()) {
        backend.kl_divergence_rows(ref_logits, logits, rows_kl);
        for (double x : rows_kl.to(Device::cpu).to_double_vector()) kl[w] += x;
      }
    }
    counted += targets.size();
    start += std::int64_t(rows) * T;
    progress.update(double(counted));
  }
  progress.finish(double(counted));
  double unquantized = NAN;
  for (std::size_t w = 0; w < widths.size(); ++w) {
    if (widths[w] == 16) unquantized = loss[w] / double(counted);
  }
  nlohmann::json points = nlohmann::json::array();
  for (std::size_t w = 0; w < widths.size(); ++w) {
    const double l = loss[w] / double(counted);
    nlohmann::json p = {{"bits", widths[w]},
                        {"loss", l},
                        {"perplexity", std::exp(l)},
                        {"kl", kl[w] / double(counted)}};
    p["delta_loss"] =
        std::isfinite(unquantized) ? nlohmann::json(l - unquantized) : nlohmann::json(nullptr);
    points.push_back(p);
  }
  return {{"granularity", per_head ? "per_head" : "per_tensor"},
          {"tokens", counted},
          {"fused_loss", fused / double(counted)},
          {"points", points}};
}

}  // namespace difftx::eval
