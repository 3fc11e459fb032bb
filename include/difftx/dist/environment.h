// Where this process stands in a data-parallel job, read from the environment its launcher set:
//   - mpirun (Open MPI): OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE};
//   - torchrun-style: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//     (set by `difftx train --nproc-per-node N` for GPU workers, or by a cluster scheduler);
//   - neither (or a world of 1): a single process.
// Inconsistent or malformed values are errors naming the variable.
#pragma once

#include <string>

namespace difftx::dist {

enum class Launch { single, mpirun, torchrun };

struct DistEnv {
  Launch launch = Launch::single;
  int rank = 0;
  int world = 1;
  int local_rank = 0;       // index among the ranks of this host (the GPU it drives)
  int local_world = 1;      // ranks on this host
  std::string master_addr;  // torchrun-style: where rank 0 serves the NCCL id
  int master_port = 0;

  bool distributed() const { return world > 1; }
};

// Reads the environment of this process.
DistEnv detect_environment();

const char* launch_name(Launch launch);

}  // namespace difftx::dist
