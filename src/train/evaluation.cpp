// Validation loss and the unigram entropy baseline (see evaluation.h).
#include "difftx/train/evaluation.h"

#include <algorithm>
#include <cmath>

#include "difftx/core/error.h"

namespace difftx {

Tensor token_tensor(const std::vector<std::int32_t>& values, int batch, int seq) {
  Tensor t = Tensor::empty({batch, seq}, DType::i32);  // (B, T)
  std::copy(values.begin(), values.end(), t.data<std::int32_t>());
  return t;
}

Evaluator::Evaluator(const data::LoaderOptions& options, int max_batches)
    : loader_(options), max_batches_(max_batches), seq_len_(options.seq_len) {}

double Evaluator::mean_loss(Model& model) {
  const Totals t = totals(model);
  DIFFTX_CHECK(t.counted > 0, "the validation split yields no targets at seq_len {}", seq_len_);
  return t.loss_sum / t.counted;
}

Evaluator::Totals Evaluator::totals(Model& model) {
  loader_.reset();
  data::Batch batch;
  Totals t;
  int n = 0;
  while ((max_batches_ == 0 || n < max_batches_) && loader_.next(batch)) {
    std::vector<std::int32_t> targets = batch.targets();  // (B, T); -1 = not counted
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (!batch.mask[i]) targets[i] = -1;
    }
    const double c = double(batch.counted_targets());
    if (c == 0) continue;
    t.loss_sum +=
        c * model.forward_loss(token_tensor(batch.inputs(), batch.batch_size, batch.seq_len),
                               token_tensor(targets, batch.batch_size, batch.seq_len));
    t.counted += c;
    ++n;
  }
  return t;
}

double unigram_entropy(const data::ShardSet& set) {
  std::vector<double> counts(set.vocab_size(), 0.0);
  double total = 0;
  std::vector<std::int32_t> buf(1 << 16);
  for (const auto& shard : set.shards()) {
    for (std::uint64_t start = 0; start < shard.size(); start += buf.size()) {
      const std::uint64_t n = std::min<std::uint64_t>(buf.size(), shard.size() - start);
      shard.copy(start, n, buf.data());
      for (std::uint64_t i = 0; i < n; ++i) counts[buf[i]] += 1;
      total += double(n);
    }
  }
  double h = 0;
  for (double c : counts) {
    if (c > 0) h -= c / total * std::log(c / total);
  }
  return h;
}

}  // namespace difftx
