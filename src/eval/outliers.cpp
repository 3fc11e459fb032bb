// The outliers task (outliers.h): probe-path forwards observed layer by layer.
#include "difftx/eval/outliers.h"

#include <algorithm>

#include "difftx/core/error.h"
#include "difftx/eval/abs_collect.h"
#include "difftx/model/probe.h"

namespace difftx::eval {
namespace {

class OutlierObserver final : public ProbeObserver {
 public:
  OutlierObserver(Backend& backend, int layers)
      : collector_(backend), logits_(std::size_t(layers)), hidden_(std::size_t(layers)) {}

  void on_attention(const ProbeAttention& a) override {
    collector_.add(*a.scores, &a.geometry, logits_[std::size_t(a.layer)]);
  }
  void on_hidden(int layer, const Tensor& hidden) override {
    collector_.add(hidden, nullptr, hidden_[std::size_t(layer)]);
  }

  const std::vector<AbsSummary>& logits() const { return logits_; }
  const std::vector<AbsSummary>& hidden() const { return hidden_; }

 private:
  AbsCollector collector_;
  std::vector<AbsSummary> logits_, hidden_;
};

}  // namespace

nlohmann::json OutlierOptions::to_json() const {
  return {{"tokens", tokens}, {"context", context}, {"batch", batch}};
}

nlohmann::json run_outliers(EvalModel& m, const HeldOutText& text, const OutlierOptions& o,
                            const EvalContext& ctx) {
  const int C = o.context > 0 ? o.context : m.config.max_seq_len;
  DIFFTX_CHECK(C >= 1 && C <= m.config.max_seq_len, "--context {} must be in [1, max_seq_len = {}]",
               C, m.config.max_seq_len);
  DIFFTX_CHECK(o.tokens >= 1, "--tokens must be >= 1");
  DIFFTX_CHECK(o.batch >= 1, "--batch must be >= 1, got {}", o.batch);
  nlohmann::json j =
      outlier_statistics(m, text.tokens(m.tokenizer, o.tokens).tokens, C, o.batch, ctx);
  j["requested_tokens"] = o.tokens;
  return j;
}

nlohmann::json outlier_statistics(EvalModel& m, const std::vector<std::int32_t>& tokens, int C,
                                  int batch, const EvalContext& ctx) {
  const std::int64_t n = std::int64_t(tokens.size());
  DIFFTX_CHECK(n >= 1, "outliers: no tokens");
  OutlierObserver observer(*ctx.backend, m.config.n_layers);
  ProbeOptions options;
  options.observer = &observer;
  ModelProbe probe(*m.model);
  Progress progress("outliers " + m.label, double(n), ctx.progress_options("tok"));
  std::int64_t done = 0, windows = 0;
  while (done < n) {
    const std::int64_t left = n - done;
    const int T = int(std::min<std::int64_t>(C, left));
    const int rows = T < C ? 1 : int(std::min<std::int64_t>(batch, left / C));
    Tensor inputs = Tensor::empty({rows, T}, DType::i32);
    std::copy(tokens.begin() + done, tokens.begin() + done + std::int64_t(rows) * T,
              inputs.data<std::int32_t>());
    probe.probe_logits(inputs, options);
    done += std::int64_t(rows) * T;
    windows += rows;
    progress.update(double(done));
  }
  progress.finish(double(done));
  AbsSummary all_logits, all_hidden;
  nlohmann::json per_layer = nlohmann::json::array();
  for (int l = 0; l < m.config.n_layers; ++l) {
    all_logits.merge(observer.logits()[std::size_t(l)]);
    all_hidden.merge(observer.hidden()[std::size_t(l)]);
    per_layer.push_back({{"layer", l},
                         {"logits", observer.logits()[std::size_t(l)].to_json()},
                         {"hidden", observer.hidden()[std::size_t(l)].to_json()}});
  }
  return {{"tokens", done},
          {"windows", windows},
          {"context", C},
          {"logits", all_logits.to_json()},
          {"hidden", all_hidden.to_json()},
          {"per_layer", per_layer}};
}

}  // namespace difftx::eval
