// `difftx study`: runs a whole study in one output folder, resumably.
//
//   <out>/study.json          the spec (and its fingerprint) and device the folder belongs to
//   <out>/data/<data set>/    data made by a synth recipe (reused once complete)
//   <out>/runs/<id>/          one run folder per run (metrics.jsonl, checkpoints/,
//                             study_result.json once trained and evaluated)
//   <out>/results.json        everything measured and the statistics (analysis.h)
//   <out>/report.html         the self-contained report (report.h)
//
// Stages: data (synth recipes), planning (every run config validated before anything trains),
// then each run: skipped when its study_result.json matches, else trained (resumed from its
// newest checkpoint, restarted when it has none) and evaluated from its final checkpoint;
// finally the analysis and the report. A stop request (Ctrl-C, SIGTERM) ends the current run
// with a checkpoint and returns after writing results.json and report.html of the runs measured
// so far, marked partial; `--resume` continues where it stopped.
#pragma once

#include <filesystem>
#include <string>

#include "difftx/core/progress.h"
#include "difftx/study/spec.h"

namespace difftx::study {

struct StudyOptions {
  std::filesystem::path out;
  std::string device;   // empty: the spec's
  bool resume = false;  // continue the study in `out`
  bool quiet = false;   // no progress output
};

struct StudyOutcome {
  bool completed = false;
  int signal = 0;                 // the stop request's signal when not completed
  std::filesystem::path results;  // results.json (empty when no run was measured)
  std::filesystem::path report;   // report.html (idem)
  double wall_seconds = 0;        // this process
};

StudyOutcome run_study(const StudySpec& spec, const StudyOptions& options);

}  // namespace difftx::study
