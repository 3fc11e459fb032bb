// The torchrun-style bootstrap: rank 0's blob reaches every rank over TCP; a wrong world size,
// a missing rank 0, a missing peer and a stranger on the port end in clear errors within the
// deadline. Also the launcher environment (RANK/WORLD_SIZE/... and Open MPI's variables).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <thread>

#include "difftx/core/error.h"
#include "difftx/dist/environment.h"
#include "difftx/dist/launcher.h"
#include "difftx/dist/rendezvous.h"

namespace difftx::dist {
namespace {

using namespace std::chrono_literals;

std::vector<std::byte> blob_of(const std::string& s) {
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

RendezvousOptions options(int port, int rank, int world, std::chrono::milliseconds timeout = 20s) {
  RendezvousOptions o;
  o.address = "127.0.0.1";
  o.port = port;
  o.rank = rank;
  o.world = world;
  o.timeout = timeout;
  return o;
}

TEST(Rendezvous, EveryRankGetsRankZerosBlob) {
  for (int world : {2, 3, 5}) {
    const int port = pick_free_port();
    const auto blob = blob_of(std::string(128, 'x') + std::to_string(world));
    std::vector<std::future<std::vector<std::byte>>> peers;
    // Peers first: they must wait for rank 0 to listen.
    for (int r = 1; r < world; ++r) {
      peers.push_back(std::async(std::launch::async,
                                 [=] { return rendezvous_share(options(port, r, world), {}); }));
    }
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(rendezvous_share(options(port, 0, world), blob), blob);
    for (auto& p : peers) EXPECT_EQ(p.get(), blob);
  }
  EXPECT_EQ(rendezvous_share(options(1, 0, 1), blob_of("solo")), blob_of("solo"));
}

TEST(Rendezvous, AWrongWorldSizeIsNamed) {
  const int port = pick_free_port();
  auto peer = std::async(std::launch::async, [=] {
    return error_of([=] { rendezvous_share(options(port, 1, 3), {}); });
  });
  const std::string err = error_of([=] { rendezvous_share(options(port, 0, 2), blob_of("id")); });
  EXPECT_NE(err.find("rank 1 says the world size is 3, rank 0 has 2"), std::string::npos) << err;
  EXPECT_NE(peer.get().find("the NCCL id exchange with 127.0.0.1"), std::string::npos);
}

TEST(Rendezvous, MissingRanksTimeOutWithTheirCount) {
  const int port = pick_free_port();
  const auto t0 = std::chrono::steady_clock::now();
  const std::string err =
      error_of([=] { rendezvous_share(options(port, 0, 3, 1500ms), blob_of("id")); });
  EXPECT_NE(err.find("only 0 of the 2 other ranks fetched the NCCL id"), std::string::npos) << err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  const std::string peer =
      error_of([=] { rendezvous_share(options(pick_free_port(), 2, 3, 1000ms), {}); });
  EXPECT_NE(peer.find("could not reach rank 0 at 127.0.0.1:"), std::string::npos) << peer;
}

TEST(Rendezvous, AStrangerOnThePortIsIgnoredAndAForeignServerRefused) {
  const int port = pick_free_port();
  // A stranger that connects and says nothing useful does not stop the real peer.
  auto server = std::async(std::launch::async,
                           [=] { return rendezvous_share(options(port, 0, 2), blob_of("real")); });
  std::this_thread::sleep_for(200ms);
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    const char junk[16] = "GET / HTTP/1.0\n";
    ASSERT_EQ(::send(fd, junk, sizeof junk, 0), ssize_t(sizeof junk));
    ::close(fd);
  }
  EXPECT_EQ(rendezvous_share(options(port, 1, 2), {}), blob_of("real"));
  EXPECT_EQ(server.get(), blob_of("real"));
  // A server that is not a difftx rendezvous.
  const int other = pick_free_port();
  auto fake = std::async(std::launch::async, [=] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(other));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 4);
    const int c = ::accept(fd, nullptr, nullptr);
    char buf[16];
    [[maybe_unused]] auto n = ::recv(c, buf, sizeof buf, MSG_WAITALL);
    const char reply[12] = "HTTP/1.0 40";
    [[maybe_unused]] auto m = ::send(c, reply, sizeof reply, 0);
    ::close(c);
    ::close(fd);
  });
  std::this_thread::sleep_for(200ms);
  const std::string err = error_of([=] { rendezvous_share(options(other, 1, 2, 5s), {}); });
  EXPECT_NE(err.find("is not a difftx rendezvous"), std::string::npos) << err;
  fake.get();
}

// Sets variables for one test and restores the environment after.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) {
    for (const char* name :
         {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
          "OMPI_COMM_WORLD_LOCAL_SIZE", "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
          "MASTER_ADDR", "MASTER_PORT"}) {
      if (const char* v = std::getenv(name)) saved_.emplace_back(name, v);
      ::unsetenv(name);
      names_.push_back(name);
    }
    for (const auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~ScopedEnv() {
    for (const auto& n : names_) ::unsetenv(n.c_str());
    for (const auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
  }

 private:
  std::vector<std::string> names_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST(Environment, ReadsMpirunAndTorchrunLayouts) {
  {
    ScopedEnv env({});
    const DistEnv e = detect_environment();
    EXPECT_EQ(e.launch, Launch::single);
    EXPECT_EQ(e.world, 1);
  }
  {
    ScopedEnv env({{"OMPI_COMM_WORLD_SIZE", "3"},
                   {"OMPI_COMM_WORLD_RANK", "2"},
                   {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                   {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"}});
    const DistEnv e = detect_environment();
    EXPECT_EQ(e.launch, Launch::mpirun);
    EXPECT_EQ(e.rank, 2);
    EXPECT_EQ(e.world, 3);
    EXPECT_EQ(e.local_rank, 0);
  }
  {
    ScopedEnv env({{"WORLD_SIZE", "4"},
                   {"RANK", "3"},
                   {"LOCAL_RANK", "1"},
                   {"LOCAL_WORLD_SIZE", "2"},
                   {"MASTER_ADDR", "node0"},
                   {"MASTER_PORT", "29500"}});
    const DistEnv e = detect_environment();
    EXPECT_EQ(e.launch, Launch::torchrun);
    EXPECT_EQ(e.rank, 3);
    EXPECT_EQ(e.local_rank, 1);
    EXPECT_EQ(e.master_addr, "node0");
    EXPECT_EQ(e.master_port, 29500);
  }
}

TEST(Environment, BadValuesNameTheVariable) {
  struct Case {
    std::vector<std::pair<std::string, std::string>> vars;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}},
       "RANK=2 is not below WORLD_SIZE=2"},
      {{{"WORLD_SIZE", "two"}}, "WORLD_SIZE='two' is not a non-negative integer"},
      {{{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_PORT", "1"}}, "MASTER_ADDR is not set"},
      {{{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}},
       "MASTER_PORT=70000 is not a TCP port"},
      {{{"WORLD_SIZE", "2"}}, "environment variable RANK is not set"},
      {{{"OMPI_COMM_WORLD_SIZE", "2"},
        {"OMPI_COMM_WORLD_RANK", "0"},
        {"OMPI_COMM_WORLD_LOCAL_RANK", "3"},
        {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}},
       "OMPI_COMM_WORLD_LOCAL_RANK=3 is not below OMPI_COMM_WORLD_LOCAL_SIZE=2"},
  };
  for (const auto& c : cases) {
    ScopedEnv env(c.vars);
    const std::string err = error_of([] { detect_environment(); });
    EXPECT_NE(err.find(c.expected), std::string::npos) << "got: " << err;
  }
}

TEST(Launcher, WorkerArgumentsDropTheLauncherOption) {
  // /proc/self/cmdline of this test program: its name and gtest's own flags.
  const auto args = own_arguments_without("--gtest_filter");
  for (const auto& a : args) EXPECT_EQ(a.rfind("--gtest_filter", 0), std::string::npos) << a;
}

}  // namespace
}  // namespace difftx::dist
