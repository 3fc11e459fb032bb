// The data-parallel side of `difftx train`: its options (--nproc-per-node, --zero, --bucket-mb,
// --dist-timeout, --master-port), the single-host launcher, and one rank's run of the Trainer
// under mpirun, the launcher or torchrun-style variables (docs/distributed.md).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "difftx/train/config_overrides.h"
#include "difftx/train/trainer.h"

namespace difftx::cli {

struct DistArgs {
  int nproc_per_node = 1;
  int zero = 1;             // 1: ZeRO-1 (reduce-scatter, sharded AdamW, all-gather); 0: all-reduce
  double bucket_mb = 25.0;  // gradient bucket size
  double timeout_s = 600;   // deadline of every collective
  int master_port = 0;      // CUDA ranks of --nproc-per-node: the NCCL id's port (0: any free)
};

void add_distributed_options(CLI::App& cmd, DistArgs& args);

// Runs the command distributed when it must be: as the launcher of --nproc-per-node N > 1
// ranks, or as one rank of a job (mpirun / torchrun-style variables). `print` reports rank 0's
// summary. Returns false for a plain single-process run, which the caller does itself.
bool train_distributed(const DistArgs& args, const LoadedRunConfig& loaded, TrainOptions options,
                       const std::function<void(const TrainSummary&)>& print);

}  // namespace difftx::cli
