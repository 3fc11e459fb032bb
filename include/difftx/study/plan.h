// The runs of a study: every (data set, size, arm, seed) with its complete run config and run
// folder <out>/runs/<data set>/<size>/<arm>/seed-<s>. Each config is the spec's base_run, then
// the data set's, the size's and the arm's overrides (merged in that order), then what the
// study sets itself: data.path, data.seed = train.seed = the seed, train.device, output.dir,
// model.vocab_size (the data's) and, for task data of R-token examples, data.seq_len = R - 1;
// a model with head_dim but no n_heads gets n_heads = d_model / (2 head_dim) (DIFF V1) or
// d_model / head_dim, so one arm fits every size.
// A matched-baseline arm takes model::matched_baseline of its DIFF arm's model at that size.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "difftx/study/dataset.h"
#include "difftx/study/spec.h"
#include "difftx/train/run_config.h"

namespace difftx::study {

struct PlannedRun {
  std::size_t dataset = 0, size = 0, arm = 0, seed_index = 0;
  std::uint64_t seed = 0;
  std::string id;             // "<data set>/<size>/<arm>/seed-<s>" (slugs)
  std::filesystem::path dir;  // the run folder
  RunConfig config;
  std::int64_t parameters = 0;
};

// Every run, data set by data set, then size, seed and arm (the arms of one seed run one
// after the other, so an interrupted study has whole pairs early). `datasets[i]` describes
// spec.datasets[i]. Throws one difftx::Error naming the run and the field for an invalid
// combination (a run config that does not validate, a split longer than model.max_seq_len...).
std::vector<PlannedRun> plan_runs(const StudySpec& spec, const std::vector<DatasetInfo>& datasets,
                                  const std::filesystem::path& out, const std::string& device);

// The splits whose examples the evaluations read, for the max_seq_len check.
std::vector<std::string> evaluated_splits(const EvaluationSpec& evaluations);

}  // namespace difftx::study
