// MPI jobs of 2 and 3 CPU ranks (through mpirun): the communicator's collectives give the
// values each rank computes for itself, and a rank that stops answering makes the others fail
// with the timeout message within the deadline instead of hanging, every rank saying why.
#include <gtest/gtest.h>

#include "dist/dist_test_util.h"

namespace difftx::dist::testing {
namespace {

TEST(MpiCommunicator, CollectivesAreRightOnTwoAndThreeRanks) {
  for (int ranks : {2, 3}) {
    const auto r = run_limited(mpirun(ranks) + " " + DIST_PROBE + " cpu collectives", 300);
    ASSERT_EQ(r.status, 0) << r.output;
    for (int k = 0; k < ranks; ++k) {
      EXPECT_NE(r.output.find("probe ok rank " + std::to_string(k) + "/" + std::to_string(ranks)),
                std::string::npos)
          << r.output;
    }
  }
}

TEST(MpiCommunicator, ASilentRankEndsTheJobWithinTheDeadline) {
  const auto r = run_limited(mpirun(3) + " " + DIST_PROBE + " cpu hang 1 2000", 120);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.status, 124) << "the job hung:\n" << r.output;
  EXPECT_LT(r.seconds, 60) << r.output;
  // The waiting ranks name the collective and the deadline; the silent one is stopped.
  EXPECT_GE(count_of(r.output, "all_reduce of 0.00 MB did not complete within 2 s"), 1) << r.output;
  EXPECT_EQ(r.output.find("probe ok"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace difftx::dist::testing
