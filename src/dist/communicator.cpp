// Communicator helpers shared by the MPI and NCCL implementations.
#include "difftx/dist/communicator.h"

#include <fmt/format.h>

namespace difftx::dist {

std::string Communicator::who() const {
  return fmt::format("rank {}/{}", rank(), world());
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return "sum";
    case ReduceOp::max:
      return "max";
    case ReduceOp::min:
      return "min";
  }
  return "?";
}

}  // namespace difftx::dist
