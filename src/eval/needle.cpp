// The needle task (needle.h): greedy retrieval per cell and attention allocation.
#include "difftx/eval/needle.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "difftx/core/error.h"
#include "difftx/data/tokenizer.h"

namespace difftx::eval {
namespace {

const char* kGroups[] = {"answer", "other_needles", "noise", "sink", "query"};
constexpr int kGroupCount = 5;

// Greedy continuation of the cached context with `query`; returns the generated text.
std::string greedy_answer(ModelProbe& probe, const KvCache& base,
                          const std::vector<std::int32_t>& query, int max_new,
                          const ProbeOptions* quant, const data::Tokenizer& tokenizer) {
  KvCache cache = base;  // shares the context's K/V; writes only past the context
  Tensor logits =
      quant ? probe.probe_decode_last(cache, query, *quant) : probe.decode_last(cache, query);
  std::vector<std::int32_t> generated;
  for (int i = 0; i < max_new; ++i) {
    const std::int32_t next =
        argmax(std::span<const float>(logits.data<float>(), std::size_t(logits.numel())));
    if (next == data::kEosId) break;
    generated.push_back(next);
    const std::string text = tokenizer.decode(generated);
    const std::string digits = first_digit_run(text);
    // stop once a digit run is followed by something else
    if (!digits.empty() && text.find(digits) + digits.size() < text.size()) break;
    if (i + 1 == max_new || cache.length() >= cache.capacity()) break;
    logits =
        quant ? probe.probe_decode_last(cache, {next}, *quant) : probe.decode_last(cache, {next});
  }
  return tokenizer.decode(generated);
}

// Sums |row| shares per key group over heads, layers and answer positions.
class AllocationObserver final : public ProbeObserver {
 public:
  AllocationObserver(const NeedlePrompt& prompt, int first_row, int rows)
      : first_(first_row), rows_(rows) {
    const int context = int(prompt.context.size());
    const int total = first_row + rows;
    group_.assign(std::size_t(total), 4);                          // query / answer tokens
    for (int s = 0; s < context; ++s) group_[std::size_t(s)] = 2;  // haystack noise
    for (std::size_t k = 0; k < prompt.spans.size(); ++k) {
      for (int s = prompt.spans[k].first; s < prompt.spans[k].second; ++s) {
        group_[std::size_t(s)] = k == 0 ? 0 : 1;
      }
    }
    group_[0] = 3;  // the leading EOS
  }

  void on_attention(const ProbeAttention& a) override {
    const AttentionGeometry& g = a.geometry;
    const int T = g.q_len, S = g.kv_len;
    // host rows [first, first + rows) of every map: (Hs, rows, S)
    std::vector<std::vector<double>> maps;
    const Tensor flat = a.probs->reshape({std::int64_t(g.q_heads) * T, S});
    for (int m = 0; m < g.q_heads; ++m) {
      maps.push_back(flat.rows(std::int64_t(m) * T + first_, std::int64_t(m) * T + first_ + rows_)
                         .to(Device::cpu)
                         .to_double_vector());
    }
    double lambda = 0;
    std::vector<double> gate;
    if (a.combine == ProbeCombine::diff_v1)
      lambda = a.lambda->to(Device::cpu).to_double_vector()[0];
    if (a.combine == ProbeCombine::diff_v2) {
      gate = a.gate_logits->rows(first_, first_ + rows_).to(Device::cpu).to_double_vector();
    }
    const int heads = probe_out_heads(g, a.combine);
    std::vector<double> w(static_cast<std::size_t>(S));
    for (int i = 0; i < heads; ++i) {
      for (int r = 0; r < rows_; ++r) {
        for (int s = 0; s < S; ++s) {
          const std::size_t at = std::size_t(r) * std::size_t(S) + std::size_t(s);
          switch (a.combine) {
            case ProbeCombine::softmax:
              w[std::size_t(s)] = maps[std::size_t(i)][at];
              break;
            case ProbeCombine::diff_v1:
              w[std::size_t(s)] =
                  maps[std::size_t(2 * i)][at] - lambda * maps[std::size_t(2 * i + 1)][at];
              break;
            case ProbeCombine::diff_v2: {
              const double sig =
                  1.0 /
                  (1.0 + std::exp(-gate[std::size_t(r) * std::size_t(heads) + std::size_t(i)]));
              w[std::size_t(s)] =
                  maps[std::size_t(2 * i)][at] - sig * maps[std::size_t(2 * i + 1)][at];
              break;
            }
          }
        }
        double total = 0, part[kGroupCount] = {0, 0, 0, 0, 0};
        for (int s = 0; s < S; ++s) {
          const double v = std::abs(w[std::size_t(s)]);
          total += v;
          part[group_[std::size_t(s)]] += v;
        }
        if (total <= 0) continue;
        for (int c = 0; c < kGroupCount; ++c) sums_[c] += part[c] / total;
        ++rows_seen_;
      }
    }
  }

  nlohmann::json shares() const {
    nlohmann::json j;
    for (int c = 0; c < kGroupCount; ++c)
      j[kGroups[c]] = rows_seen_ ? sums_[c] / double(rows_seen_) : 0.0;
    return j;
  }

 private:
  int first_, rows_;
  std::vector<int> group_;
  double sums_[kGroupCount] = {0, 0, 0, 0, 0};
  std::int64_t rows_seen_ = 0;
};

}  // namespace

nlohmann::json NeedleOptions::to_json() const {
  nlohmann::json cfg = nlohmann::json::array();
  for (const auto& c : configs) cfg.push_back({{"needles", c.needles}, {"queried", c.queried}});
  return {{"configs", cfg},
          {"depths", depths},
          {"lengths", lengths},
          {"samples", samples},
          {"digits", digits},
          {"keys", keys.empty() ? nlohmann::json("builtin") : nlohmann::json(keys.size())},
          {"allocation", allocation},
          {"bits", quant.bits},
          {"per_head", quant.per_head}};
}

std::vector<NeedleConfig> parse_needle_configs(const std::string& text) {
  std::vector<NeedleConfig> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto colon = item.find(':');
    NeedleConfig c;
    try {
      std::size_t used = 0;
      if (colon == std::string::npos) throw std::invalid_argument("no colon");
      c.needles = std::stoi(item.substr(0, colon), &used);
      if (used != colon) throw std::invalid_argument("junk");
      const std::string r = item.substr(colon + 1);
      c.queried = std::stoi(r, &used);
      if (used != r.size()) throw std::invalid_argument("junk");
    } catch (const std::exception&) {
      fail("--needles: '{}' is not N:R (needles:queried, e.g. 4:2)", item);
    }
    DIFFTX_CHECK(c.needles >= 1 && c.queried >= 1 && c.queried <= c.needles,
                 "--needles: {}:{} needs 1 <= R <= N", c.needles, c.queried);
    out.push_back(c);
  }
  DIFFTX_CHECK(!out.empty(), "--needles: give at least one N:R pair");
  return out;
}

nlohmann::json needle_allocation(EvalModel& m, const NeedlePrompt& prompt) {
  std::vector<std::int32_t> seq = prompt.context;
  seq.insert(seq.end(), prompt.queries[0].begin(), prompt.queries[0].end());
  const int first = int(seq.size()) - 1;  // predicts the first answer token
  const int rows = int(prompt.answers[0].size());
  seq.insert(seq.end(), prompt.answers[0].begin(), prompt.answers[0].end() - 1);
  AllocationObserver observer(prompt, first, rows);
  ProbeOptions options;
  options.observer = &observer;
  Tensor inputs = Tensor::empty({1, std::int64_t(seq.size())}, DType::i32);
  std::copy(seq.begin(), seq.end(), inputs.data<std::int32_t>());
  ModelProbe(*m.model).probe_logits(inputs, options);
  return observer.shares();
}

nlohmann::json run_needle(EvalModel& m, const std::vector<std::string>& sentences,
                          const NeedleOptions& o, const EvalContext& ctx) {
  DIFFTX_CHECK(o.samples >= 1, "--samples must be >= 1, got {}", o.samples);
  DIFFTX_CHECK(!o.configs.empty() && !o.depths.empty(), "needle: no configs or depths");
  const std::vector<std::string>& keys = o.keys.empty() ? builtin_needle_keys() : o.keys;
  std::vector<int> lengths = o.lengths;
  const int room = o.digits + 4;  // generated tokens at most: the answer's plus two
  if (lengths.empty()) lengths = {m.config.max_seq_len - room};
  for (int L : lengths) {
    DIFFTX_CHECK(L >= 8 && L + room <= m.config.max_seq_len,
                 "--lengths {}: a needle prompt must leave room for the answer: at most "
                 "max_seq_len - digits - 4 = {} tokens for {}",
                 L, m.config.max_seq_len - room, m.label);
  }
  const bool quantized = o.quant.enabled();
  ProbeOptions quant_options;
  quant_options.quant = o.quant;
  ModelProbe probe(*m.model);
  const double total = double(o.configs.size() * o.depths.size() * lengths.size()) * o.samples;
  Progress progress(
      "needle " + m.label + (quantized ? " " + std::to_string(o.quant.bits) + "-bit" : ""), total,
      ctx.progress_options("sample"));
  nlohmann::json cells = nlohmann::json::array(), examples = nlohmann::json::array();
  nlohmann::json allocation = nlohmann::json::array(), by_config = nlohmann::json::array();
  double done = 0, grand = 0;
  std::size_t grand_cells = 0;
  for (const NeedleConfig& cfg : o.configs) {
    double config_sum = 0;
    for (int depth : o.depths) {
      std::vector<double> alloc_sum(kGroupCount, 0.0);
      int alloc_samples = 0;
      for (int L : lengths) {
        double acc_sum = 0, answer_sum = 0;
        for (int i = 0; i < o.samples; ++i) {
          const NeedleSample s = make_needle_sample(keys, cfg, depth, L, o.digits, i, ctx.seed);
          const NeedlePrompt p = build_needle_prompt(s, sentences, m.tokenizer);
          KvCache base(*m.model, m.config.max_seq_len);
          if (quantized) {
            probe.probe_decode_last(base, p.context, quant_options);
          } else {
            probe.decode_last(base, p.context);
          }
          int found = 0;
          for (int r = 0; r < cfg.queried; ++r) {
            const std::string text = greedy_answer(
                probe, base, p.queries[std::size_t(r)], int(p.answers[std::size_t(r)].size()) + 2,
                quantized ? &quant_options : nullptr, m.tokenizer);
            const bool ok = first_digit_run(text) == s.numbers[std::size_t(r)];
            found += ok;
            if (r == 0) answer_sum += ok;
            if (i == 0 && r == 0) {
              examples.push_back({{"needles", cfg.needles},
                                  {"queried", cfg.queried},
                                  {"depth", depth},
                                  {"length", L},
                                  {"key", s.keys[0]},
                                  {"expected", s.numbers[0]},
                                  {"generated", text}});
            }
          }
          acc_sum += double(found) / cfg.queried;
          if (o.allocation && !quantized) {
            const nlohmann::json shares = needle_allocation(m, p);
            for (int c = 0; c < kGroupCount; ++c)
              alloc_sum[std::size_t(c)] += shares[kGroups[c]].get<double>();
            ++alloc_samples;
          }
          progress.update(++done);
        }
        const double acc = acc_sum / o.samples;
        cells.push_back({{"needles", cfg.needles},
                         {"queried", cfg.queried},
                         {"depth", depth},
                         {"length", L},
                         {"samples", o.samples},
                         {"accuracy", acc},
                         {"answer_accuracy", answer_sum / o.samples}});
        config_sum += acc;
        grand += acc;
        ++grand_cells;
      }
      if (alloc_samples > 0) {
        nlohmann::json a = {{"needles", cfg.needles},
                            {"queried", cfg.queried},
                            {"depth", depth},
                            {"samples", alloc_samples}};
        for (int c = 0; c < kGroupCount; ++c)
          a[kGroups[c]] = alloc_sum[std::size_t(c)] / alloc_samples;
        allocation.push_back(a);
      }
    }
    by_config.push_back({{"needles", cfg.needles},
                         {"queried", cfg.queried},
                         {"accuracy", config_sum / double(o.depths.size() * lengths.size())}});
  }
  progress.finish(done);
  nlohmann::json j = {{"cells", cells},
                      {"by_config", by_config},
                      {"accuracy", grand / double(grand_cells)},
                      {"lengths", lengths},
                      {"examples", examples}};
  if (!allocation.empty()) j["allocation"] = allocation;
  return j;
}

}  // namespace difftx::eval
