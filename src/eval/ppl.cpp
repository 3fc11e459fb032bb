// The ppl task (ppl.h): sliding windows, per-token losses from device logits, position curves.
#include "difftx/eval/ppl.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "difftx/core/error.h"
#include "difftx/model/probe.h"

namespace difftx::eval {

nlohmann::json PplOptions::to_json() const {
  return {{"context", context},
          {"stride", stride},
          {"batch", batch},
          {"max_tokens", max_tokens},
          {"buckets", buckets}};
}

nlohmann::json run_ppl(EvalModel& m, const HeldOutText& text, const PplOptions& o,
                       const EvalContext& ctx) {
  const int C = o.context > 0 ? o.context : m.config.max_seq_len;
  const int S = o.stride > 0 ? o.stride : C;
  DIFFTX_CHECK(C >= 2 && C <= m.config.max_seq_len,
               "--context {} must be in [2, max_seq_len = {}] for {}", C, m.config.max_seq_len,
               m.label);
  DIFFTX_CHECK(S >= 1 && S <= C, "--stride {} must be in [1, --context = {}]", S, C);
  DIFFTX_CHECK(o.batch >= 1, "--batch must be >= 1, got {}", o.batch);
  DIFFTX_CHECK(o.buckets >= 1, "--buckets must be >= 1, got {}", o.buckets);
  const TokenStream stream = text.tokens(m.tokenizer, o.max_tokens);
  const std::int64_t n = std::int64_t(stream.tokens.size());
  DIFFTX_CHECK(n >= 2, "ppl: the held-out text gives {} tokens; at least 2 are needed", n);

  // windows: starts 0, S, 2S, ... until the last target n - 1 is covered
  std::vector<std::int64_t> starts;
  for (std::int64_t w = 0;; w += S) {
    starts.push_back(w);
    if (w + C >= n - 1) break;
  }
  std::vector<double> pos_sum(std::size_t(C), 0.0);
  std::vector<std::uint64_t> pos_count(std::size_t(C), 0);
  double total = 0;
  std::uint64_t counted = 0;
  ModelProbe probe(*m.model);
  Progress progress("ppl " + m.label, double(n - 1), ctx.progress_options("tok"));
  std::int64_t covered = 0;  // targets 1 .. covered were scored by earlier windows
  for (std::size_t w0 = 0; w0 < starts.size(); w0 += std::size_t(o.batch)) {
    const int rows = int(std::min<std::size_t>(std::size_t(o.batch), starts.size() - w0));
    Tensor inputs = Tensor::empty({rows, C}, DType::i32);
    std::vector<std::int32_t> targets(std::size_t(rows) * std::size_t(C), -1);
    std::int32_t* in = inputs.data<std::int32_t>();
    for (int r = 0; r < rows; ++r) {
      const std::int64_t start = starts[w0 + std::size_t(r)];
      for (int t = 0; t < C; ++t) {
        const std::int64_t i = start + t;
        in[std::int64_t(r) * C + t] = i < n ? stream.tokens[std::size_t(i)] : 0;
        const std::int64_t j = i + 1;  // target index
        if (j < n && j > covered) {
          targets[std::size_t(r) * std::size_t(C) + std::size_t(t)] = stream.tokens[std::size_t(j)];
        }
      }
      covered = std::max(covered, std::min(start + C, n - 1));
    }
    const auto nll = token_nll(*ctx.backend, probe.forward_logits(inputs), targets);
    for (std::size_t k = 0; k < targets.size(); ++k) {
      if (targets[k] < 0) continue;
      const std::size_t t = k % std::size_t(C);
      pos_sum[t] += nll[k];
      pos_count[t] += 1;
      total += nll[k];
      ++counted;
    }
    progress.update(double(counted));
  }
  progress.finish(double(counted));
  DIFFTX_CHECK(counted == std::uint64_t(n - 1), "ppl: scored {} of {} targets (internal error)",
               counted, n - 1);

  nlohmann::json j;
  const double loss = total / double(counted);
  j["tokens"] = counted;
  j["bytes"] = stream.bytes;
  j["loss"] = loss;
  j["perplexity"] = std::exp(loss);
  j["bits_per_byte"] = stream.bytes > 0 ? total / std::numbers::ln2 / double(stream.bytes) : 0.0;
  j["context"] = C;
  j["stride"] = S;
  j["windows"] = starts.size();
  j["from_shards"] = stream.from_shards;
  // mean NLL per position bucket
  const int width = (C + o.buckets - 1) / o.buckets;
  nlohmann::json b = {{"start", nlohmann::json::array()},
                      {"end", nlohmann::json::array()},
                      {"mean_nll", nlohmann::json::array()},
                      {"count", nlohmann::json::array()}};
  for (int lo = 0; lo < C; lo += width) {
    const int hi = std::min(C, lo + width);
    double s = 0;
    std::uint64_t c = 0;
    for (int t = lo; t < hi; ++t) {
      s += pos_sum[std::size_t(t)];
      c += pos_count[std::size_t(t)];
    }
    b["start"].push_back(lo);
    b["end"].push_back(hi);
    b["mean_nll"].push_back(c ? nlohmann::json(s / double(c)) : nlohmann::json(nullptr));
    b["count"].push_back(c);
  }
  j["by_position"] = b;
  // cumulative average NLL over positions 0..p, at up to ~128 positions
  nlohmann::json cum = {{"position", nlohmann::json::array()},
                        {"mean_nll", nlohmann::json::array()}};
  const int step = std::max(1, C / 128);
  double s = 0;
  std::uint64_t c = 0;
  for (int t = 0; t < C; ++t) {
    s += pos_sum[std::size_t(t)];
    c += pos_count[std::size_t(t)];
    if (c > 0 && ((t + 1) % step == 0 || t == C - 1)) {
      cum["position"].push_back(t);
      cum["mean_nll"].push_back(s / double(c));
    }
  }
  j["cumulative"] = cum;
  return j;
}

}  // namespace difftx::eval
