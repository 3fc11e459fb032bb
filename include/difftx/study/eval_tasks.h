// The eval library's measurements of one trained run of a study (evaluations.needle, .outliers,
// .quant_logits of the spec), turned into per-run metrics the study compares across arms:
//   needle_accuracy_<L>        retrieval accuracy at prompt length L (mean over depths, N:R
//                              configs and samples; eval/needle.h scoring)
//   logit_top1, logit_top1_over_median, hidden_top1, hidden_top1_over_median
//                              the largest |attention logit| and |hidden state|, and their ratio
//                              to the median (eval/outliers.h)
//   quant_loss_b<B>            validation loss with attention logits quantized to B bits
//                              (B = 16: none), quant_delta_b<B> its increase over 16 bits and
//                              quant_kl_b<B> the KL divergence to the unquantized model
//                              (eval/quant.h)
// The eval library's whole results are kept beside the metrics (the run's study_result.json).
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "difftx/core/progress.h"
#include "difftx/model/backend.h"
#include "difftx/study/dataset.h"
#include "difftx/study/spec.h"

namespace difftx::study {

struct EvalTaskResults {
  std::map<std::string, double> metrics;
  nlohmann::json details = nlohmann::json::object();  // {"needle", "outliers", "quant_logits"}
};

// Whether the spec asks for any of these measurements.
bool wants_eval_tasks(const EvaluationSpec& evaluations);

// Measures the checkpoint folder `checkpoint` (with its tokenizer.model) on `backend`. The
// held-out text is the data set's validation split; `seq_len` (the run's data.seq_len) is the
// window of outliers and quant_logits when their context is 0. Needle keys and digits come from
// the data set's needles.json (its held-out test cities); haystacks are its validation
// sentences without the needle sentences and questions of the needle-mix documents.
EvalTaskResults run_eval_tasks(const EvaluationSpec& evaluations,
                               const std::filesystem::path& checkpoint, const DatasetInfo& data,
                               int seq_len, Backend& backend, const std::string& device,
                               ProgressMode progress);

}  // namespace difftx::study
