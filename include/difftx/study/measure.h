// Measurements of a trained model on one split of its data set: the mean loss per labelled
// target, and the argmax accuracy at the labelled positions (MQAR: the fraction of queries whose
// value the model predicts exactly). Both read every example of the split once (or its first
// max_batches batches) through the evaluation loader, so padding and unlabelled targets never
// count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "difftx/model/model.h"

namespace difftx::study {

struct SplitMeasureOptions {
  std::filesystem::path data;  // data folder
  std::string split = "val";   // file prefix: "val" or "test"
  int seq_len = 0;             // T of the loader (R - 1 for task data)
  int batch_size = 8;          // examples per forward
  int max_batches = 0;         // 0: the whole split
};

struct SplitAccuracy {
  double accuracy = 0;  // correct / targets
  std::uint64_t correct = 0;
  std::uint64_t targets = 0;
};

// Nats per counted target.
double measure_loss(Model& model, const SplitMeasureOptions& options);

// Prediction at target (b, t): the id of the largest logit at position t (lowest id among ties).
// Throws when the split yields no labelled target.
SplitAccuracy measure_accuracy(Model& model, const SplitMeasureOptions& options);

}  // namespace difftx::study
