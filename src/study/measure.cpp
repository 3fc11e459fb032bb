// Loss and labelled-position accuracy of a model on a split (see measure.h).
#include "difftx/study/measure.h"

#include <vector>

#include "difftx/core/error.h"
#include "difftx/data/loader.h"
#include "difftx/train/evaluation.h"

namespace difftx::study {
namespace {

data::LoaderOptions loader_options(const SplitMeasureOptions& o) {
  data::LoaderOptions lo;
  lo.path = o.data;
  lo.split = o.split;
  lo.seq_len = o.seq_len;
  lo.batch_size = o.batch_size;
  lo.verify = true;  // payload checksums and ids: the test split was never read by the trainer
  return lo;
}

// Index of the largest of n values (the first among ties).
template <typename T>
std::int32_t argmax_row(const T* row, std::int64_t n) {
  std::int64_t best = 0;
  for (std::int64_t v = 1; v < n; ++v) {
    if (row[v] > row[best]) best = v;
  }
  return static_cast<std::int32_t>(best);
}

}  // namespace

double measure_loss(Model& model, const SplitMeasureOptions& options) {
  Evaluator evaluator(loader_options(options), options.max_batches);
  return evaluator.mean_loss(model);
}

SplitAccuracy measure_accuracy(Model& model, const SplitMeasureOptions& options) {
  data::EvalLoader loader(loader_options(options));
  data::Batch batch;
  SplitAccuracy r;
  int n = 0;
  while ((options.max_batches == 0 || n < options.max_batches) && loader.next(batch)) {
    ++n;
    if (batch.counted_targets() == 0) continue;
    const Tensor logits =  // host (B, T, V)
        model.logits(token_tensor(batch.inputs(), batch.batch_size, batch.seq_len));
    const std::int64_t vocab = logits.dim(2);
    for (int b = 0; b < batch.rows; ++b) {
      for (int t = 0; t < batch.seq_len; ++t) {
        const std::size_t i = static_cast<std::size_t>(b) * batch.seq_len + t;
        if (!batch.mask[i]) continue;
        const std::int64_t offset = static_cast<std::int64_t>(i) * vocab;
        const std::int32_t predicted = logits.dtype() == DType::f64
                                           ? argmax_row(logits.data<double>() + offset, vocab)
                                           : argmax_row(logits.data<float>() + offset, vocab);
        r.correct += predicted == batch.target(b, t) ? 1 : 0;
        ++r.targets;
      }
    }
  }
  DIFFTX_CHECK(
      r.targets > 0,
      "split \"{}\" of '{}' has no labelled target at seq_len {}: accuracy needs task data "
      "with labels (e.g. `difftx data synth mqar`)",
      options.split, options.data.string(), options.seq_len);
  r.accuracy = double(r.correct) / double(r.targets);
  return r;
}

}  // namespace difftx::study
