// The icl task (icl.h): prompts, constrained decoding through shared KV-cache prefixes.
#include "difftx/eval/icl.h"

#include <algorithm>
#include <cmath>

#include "difftx/core/error.h"
#include "difftx/eval/random.h"
#include "difftx/eval/stats.h"
#include "difftx/model/probe.h"

namespace difftx::eval {
namespace {

// Summed log-probability of `continuation` after the cached prefix whose last logits are given.
double continuation_log_prob(ModelProbe& probe, const KvCache& cache, const Tensor& last_logits,
                             const std::vector<std::int32_t>& continuation) {
  double lp = 0;
  KvCache c = cache;  // shares the prefix's K/V, writes only past it
  Tensor logits = last_logits;
  for (std::size_t i = 0; i < continuation.size(); ++i) {
    lp += log_prob(std::span<const float>(logits.data<float>(), std::size_t(logits.numel())),
                   continuation[i]);
    if (i + 1 < continuation.size()) logits = probe.decode_last(c, {continuation[i]});
  }
  return lp;
}

}  // namespace

nlohmann::json IclOptions::to_json() const {
  return {{"shots", shots}, {"permutations", permutations}};
}

std::string classify(EvalModel& m, const std::vector<std::int32_t>& prompt,
                     const std::vector<std::string>& labels, std::vector<double>* scores) {
  ModelProbe probe(*m.model);
  KvCache cache(*m.model, m.config.max_seq_len);
  const Tensor last = probe.decode_last(cache, prompt);
  std::string best;
  double best_lp = -INFINITY;
  if (scores) scores->clear();
  for (const auto& label : labels) {
    const double lp = continuation_log_prob(probe, cache, last,
                                            m.tokenizer.encode(icl_label_continuation(label)));
    if (scores) scores->push_back(lp);
    if (lp > best_lp) {
      best_lp = lp;
      best = label;
    }
  }
  return best;
}

nlohmann::json run_icl(EvalModel& m, const IclTask& task, const IclOptions& o,
                       const EvalContext& ctx) {
  DIFFTX_CHECK(o.permutations >= 1, "--permutations must be >= 1, got {}", o.permutations);
  DIFFTX_CHECK(!o.shots.empty(), "--shots: give at least one number of demonstrations");
  ModelProbe probe(*m.model);
  std::vector<std::vector<std::int32_t>> label_ids;
  std::size_t longest_label = 0;
  for (const auto& l : task.labels) {
    label_ids.push_back(m.tokenizer.encode(icl_label_continuation(l)));
    longest_label = std::max(longest_label, label_ids.back().size());
  }
  std::vector<std::vector<std::int32_t>> queries;
  std::size_t longest_query = 0;
  for (const auto& e : task.test) {
    queries.push_back(m.tokenizer.encode(icl_format_query(e.text)));
    longest_query = std::max(longest_query, queries.back().size());
  }
  double total = 0;
  for (int k : o.shots) total += double(k == 0 ? 1 : o.permutations) * double(task.test.size());
  Progress progress("icl " + m.label, total, ctx.progress_options("ex"));
  double done = 0;
  nlohmann::json points = nlohmann::json::array();
  for (int k : o.shots) {
    const std::vector<IclExample> demos = pick_demonstrations(task, k, ctx.seed);
    const int perms = k <= 1 ? 1 : o.permutations;  // one order of 0 or 1 demonstration
    std::vector<double> accuracies;
    std::size_t prompt_tokens = 0;
    bool skipped = false;
    for (int p = 0; p < perms && !skipped; ++p) {
      std::vector<IclExample> order = demos;
      if (p > 0) {
        Rng rng(derive_seed(ctx.seed, {0x7065726dull, std::uint64_t(k), std::uint64_t(p)}));
        rng.shuffle(order);
      }
      std::vector<std::int32_t> prefix = {data::kEosId};
      for (const auto& d : order) {
        const auto ids = m.tokenizer.encode(icl_format_demo(d));
        prefix.insert(prefix.end(), ids.begin(), ids.end());
      }
      prompt_tokens = prefix.size() + longest_query;
      if (prompt_tokens + longest_label > std::size_t(m.config.max_seq_len)) {
        points.push_back(
            {{"shots", k},
             {"skipped", fmt::format("{} demonstrations need up to {} tokens; max_seq_len is {}", k,
                                     prompt_tokens + longest_label, m.config.max_seq_len)}});
        skipped = true;
        break;
      }
      KvCache base(*m.model, m.config.max_seq_len);
      // the prefix without its last token is cached once; each query starts from a copy
      const std::vector<std::int32_t> head(prefix.begin(), prefix.end() - 1);
      if (!head.empty()) probe.decode_last(base, head);
      int correct = 0;
      for (std::size_t e = 0; e < task.test.size(); ++e) {
        KvCache c = base;
        std::vector<std::int32_t> feed = {prefix.back()};
        feed.insert(feed.end(), queries[e].begin(), queries[e].end());
        const Tensor last = probe.decode_last(c, feed);
        std::string best;
        double best_lp = -INFINITY;
        for (std::size_t l = 0; l < task.labels.size(); ++l) {
          const double lp = continuation_log_prob(probe, c, last, label_ids[l]);
          if (lp > best_lp) {
            best_lp = lp;
            best = task.labels[l];
          }
        }
        correct += best == task.test[e].label;
        progress.update(++done);
      }
      accuracies.push_back(double(correct) / double(task.test.size()));
    }
    if (skipped) continue;
    const Spread s = spread(accuracies);
    points.push_back({{"shots", k},
                      {"accuracies", accuracies},
                      {"mean", s.mean},
                      {"std", s.std},
                      {"best_minus_worst", s.range()},
                      {"prompt_tokens", prompt_tokens}});
  }
  progress.finish(done);
  return {{"labels", task.labels},
          {"test", task.test.size()},
          {"pool", task.pool.size()},
          {"chance", 1.0 / double(task.labels.size())},
          {"points", points}};
}

}  // namespace difftx::eval
