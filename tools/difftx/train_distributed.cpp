// `difftx train` as a data-parallel job (train_distributed.h): the launcher of
// --nproc-per-node, and one rank's Trainer with the dist runtime.
#include "train_distributed.h"

#include <fmt/core.h>

#include "cli_options.h"
#include "difftx/core/error.h"
#include "difftx/dist/environment.h"
#include "difftx/dist/launcher.h"
#include "difftx/dist/trainer_runtime.h"
#include "difftx/dist/worker.h"

namespace difftx::cli {

void add_distributed_options(CLI::App& cmd, DistArgs& a) {
  cmd.add_option("--nproc-per-node", a.nproc_per_node,
                 "Data-parallel ranks to start on this host: one per GPU (--device cuda, NCCL) or "
                 "CPU ranks through mpirun (--device cpu); data.batch_size is the global batch, "
                 "split over the ranks (docs/distributed.md)")
      ->check(integer_in<int>(1, 1024));
  cmd.add_option("--zero", a.zero,
                 "1 (default): ZeRO-1, AdamW state sharded over the ranks (reduce-scatter + "
                 "all-gather); 0: plain all-reduce, state on every rank")
      ->check(integer_in<int>(0, 1));
  cmd.add_option("--bucket-mb", a.bucket_mb,
                 "Gradient bucket size in MB: one collective per bucket, launched during the "
                 "backward (default 25)")
      ->check(CLI::Range(0.001, 4096.0));
  cmd.add_option("--dist-timeout", a.timeout_s,
                 "Seconds a rank waits for the others in a collective before it ends the job "
                 "(default 600)")
      ->check(CLI::Range(0.1, 86400.0));
  cmd.add_option("--master-port", a.master_port,
                 "--nproc-per-node with CUDA: the TCP port rank 0 serves the NCCL id on (default: "
                 "a free one)")
      ->check(integer_in<int>(1, 65535));
}

bool train_distributed(const DistArgs& a, const LoadedRunConfig& loaded, TrainOptions options,
                       const std::function<void(const TrainSummary&)>& print) {
  const dist::DistEnv env = dist::detect_environment();
  if (a.nproc_per_node > 1) {
    if (env.distributed()) {
      fail(
          "--nproc-per-node {}: this process is already rank {} of {} ({}); start the ranks "
          "with one launcher only",
          a.nproc_per_node, env.rank, env.world, dist::launch_name(env.launch));
    }
    dist::LaunchOptions lo;
    lo.nproc = a.nproc_per_node;
    lo.device = loaded.config.train.device;
    lo.master_port = a.master_port;
    lo.args = dist::own_arguments_without("--nproc-per-node");
    dist::launch_local(lo);
    return true;
  }
  if (!env.distributed()) return false;
  const std::string device = loaded.config.train.device;
  dist::install_stop_message(env);  // a stopped rank says why; no Ctrl-C checkpoint in a job
  dist::run_rank(env, [&] {
    if (device == "cuda") dist::select_gpu(env);
    dist::DataParallelOptions dpo;
    dpo.zero = a.zero == 1;
    dpo.bucket_mb = a.bucket_mb;
    const auto timeout = std::chrono::milliseconds(std::int64_t(a.timeout_s * 1000));
    dist::TrainerRuntime runtime(env, dpo, timeout);
    options.parallel = &runtime;
    options.quiet = options.quiet || env.rank != 0;
    options.stop_on_signal = false;
    TrainSummary summary;
    {
      Trainer trainer(loaded.config, options);
      summary = trainer.run();
    }  // the trainer goes before the runtime that owns its model
    if (env.rank == 0) print(summary);
  });
  return true;
}

}  // namespace difftx::cli
