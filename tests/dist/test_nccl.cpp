// NCCL jobs of 2 CUDA ranks started with torchrun-style variables (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT; the NCCL id goes over TCP): the collectives give the
// values each rank computes for itself, and a rank that stops answering makes the other abort
// its communicator and fail with the timeout message instead of hanging. Skipped with fewer
// than 2 GPUs. NCCL_NVLS_ENABLE=0 is set for the ranks (NVLink multicast stays off).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "difftx/dist/rendezvous.h"
#include "dist/dist_test_util.h"

namespace difftx::dist::testing {
namespace {

int gpus() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

// The probe program: DIFFTX_DIST_PROBE when set (binaries staged away from their build tree, as
// on the GPU machine), else the one built beside this test.
std::string probe() {
  const char* staged = std::getenv("DIFFTX_DIST_PROBE");
  return staged != nullptr && *staged != 0 ? staged : DIST_PROBE;
}

// Two ranks of the probe in the background; the shell's status is rank 0's | rank 1's.
std::string two_ranks(const std::string& args) {
  const int port = pick_free_port();
  std::string cmd =
      "sh -c 'export NCCL_NVLS_ENABLE=0 WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 "
      "MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
      std::to_string(port) + "; ";
  for (int r = 0; r < 2; ++r) {
    cmd += "RANK=" + std::to_string(r) + " LOCAL_RANK=" + std::to_string(r) + " " + probe() +
           " cuda " + args + " & p" + std::to_string(r) + "=$!; ";
  }
  cmd += "wait $p0; s0=$?; wait $p1; s1=$?; echo status $s0 $s1; exit $((s0 | s1))'";
  return cmd;
}

TEST(NcclCommunicator, CollectivesAreRightOnTwoGpus) {
  if (gpus() < 2) GTEST_SKIP() << "needs 2 GPUs, found " << gpus();
  const auto r = run_limited(two_ranks("collectives"), 300);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("probe ok rank 0/2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("probe ok rank 1/2"), std::string::npos) << r.output;
}

TEST(NcclCommunicator, ASilentRankMakesTheOtherAbortWithinTheDeadline) {
  if (gpus() < 2) GTEST_SKIP() << "needs 2 GPUs, found " << gpus();
  const auto r = run_limited(two_ranks("hang 1 3000"), 120);
  EXPECT_NE(r.status, 124) << "the job hung:\n" << r.output;
  EXPECT_NE(r.output.find("status 1 3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 0/2: NCCL waiting for the collectives did not complete within 3 s"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("probe ok"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace difftx::dist::testing
