// Validation during training: the mean loss per target token over the validation split (or
// its first eval_batches batches), and the unigram entropy of the training tokens, the loss
// of a model that ignores context (the level a trained model must beat).
#pragma once

#include <cstdint>
#include <vector>

#include "difftx/core/tensor.h"
#include "difftx/data/loader.h"
#include "difftx/model/model.h"

namespace difftx {

class Evaluator {
 public:
  // max_batches 0: the whole split.
  Evaluator(const data::LoaderOptions& options, int max_batches);

  // Mean loss (nats per counted target) of `model` over the batches. Throws if the split
  // yields no targets at this seq_len.
  double mean_loss(Model& model);

 private:
  data::EvalLoader loader_;
  int max_batches_;
};

// Nats: the entropy of the token frequencies of every shard of `set`.
double unigram_entropy(const data::ShardSet& set);

// (batch, seq) i32 tensor of `values` (row-major, batch * seq entries).
Tensor token_tensor(const std::vector<std::int32_t>& values, int batch, int seq);

}  // namespace difftx
