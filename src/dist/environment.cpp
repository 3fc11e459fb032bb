// Reading a job's rank layout from the launcher's environment variables (see environment.h).
#include "difftx/dist/environment.h"

#include <charconv>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "difftx/core/error.h"

namespace difftx::dist {
namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

// A non-negative integer variable, or `fallback` when unset.
int int_var(const char* name, std::optional<int> fallback) {
  const auto text = env(name);
  if (!text) {
    if (fallback) return *fallback;
    fail(
        "environment variable {} is not set: the launcher must set it with the other rank "
        "variables (or run `difftx train --nproc-per-node N`)",
        name);
  }
  int value = -1;
  const char* end = text->data() + text->size();
  const auto [ptr, ec] = std::from_chars(text->data(), end, value);
  if (ec != std::errc() || ptr != end || value < 0) {
    fail("environment variable {}='{}' is not a non-negative integer", name, *text);
  }
  return value;
}

void check_layout(const DistEnv& e, const char* rank_var, const char* world_var,
                  const char* local_var, const char* local_world_var) {
  if (e.world < 1) fail("{}={}: the world size must be at least 1", world_var, e.world);
  if (e.rank >= e.world) {
    fail("{}={} is not below {}={}: ranks are numbered 0 .. world size - 1", rank_var, e.rank,
         world_var, e.world);
  }
  if (e.local_world < 1 || e.local_world > e.world) {
    fail("{}={} must be between 1 and {}={}", local_world_var, e.local_world, world_var, e.world);
  }
  if (e.local_rank >= e.local_world) {
    fail("{}={} is not below {}={}", local_var, e.local_rank, local_world_var, e.local_world);
  }
}

}  // namespace

const char* launch_name(Launch launch) {
  switch (launch) {
    case Launch::single:
      return "single process";
    case Launch::mpirun:
      return "mpirun";
    case Launch::torchrun:
      return "torchrun-style environment";
  }
  return "?";
}

DistEnv detect_environment() {
  DistEnv e;
  if (env("OMPI_COMM_WORLD_SIZE")) {
    e.launch = Launch::mpirun;
    e.world = int_var("OMPI_COMM_WORLD_SIZE", std::nullopt);
    e.rank = int_var("OMPI_COMM_WORLD_RANK", std::nullopt);
    e.local_rank = int_var("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    e.local_world = int_var("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
    check_layout(e, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                 "OMPI_COMM_WORLD_LOCAL_SIZE");
  } else if (env("WORLD_SIZE")) {
    e.launch = Launch::torchrun;
    e.world = int_var("WORLD_SIZE", std::nullopt);
    e.rank = int_var("RANK", std::nullopt);
    e.local_rank = int_var("LOCAL_RANK", e.rank);
    e.local_world = int_var("LOCAL_WORLD_SIZE", e.world);
    check_layout(e, "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE");
    if (e.world > 1) {
      e.master_addr = env("MASTER_ADDR").value_or("");
      if (e.master_addr.empty()) {
        fail("WORLD_SIZE={} but MASTER_ADDR is not set: set it to the host of rank 0", e.world);
      }
      e.master_port = int_var("MASTER_PORT", std::nullopt);
      if (e.master_port < 1 || e.master_port > 65535) {
        fail("MASTER_PORT={} is not a TCP port (1-65535)", e.master_port);
      }
    }
  }
  if (e.world == 1) e.launch = Launch::single;
  return e;
}

}  // namespace difftx::dist
