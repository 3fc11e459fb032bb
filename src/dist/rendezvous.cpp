// TCP exchange of rank 0's bootstrap blob (see rendezvous.h): POSIX sockets, IPv4, every read,
// write, accept and connect bounded by the deadline through poll().
#include "difftx/dist/rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <thread>

#include "difftx/core/error.h"

namespace difftx::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::array<char, 4> kMagic = {'D', 'T', 'X', 'R'};
constexpr std::uint32_t kVersion = 1;
constexpr std::uint32_t kMaxBlob = 1 << 20;

class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
}

// Waits until fd is ready for `events`; false at the deadline.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, ms_left(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

// Reads or writes exactly n bytes; an empty string on success, else what went wrong.
std::string transfer(int fd, void* data, std::size_t n, bool write, Clock::time_point deadline) {
  auto* p = static_cast<char*>(data);
  std::size_t done = 0;
  while (done < n) {
    if (!wait_fd(fd, write ? POLLOUT : POLLIN, deadline)) return "timed out";
    const ssize_t r =
        write ? ::send(fd, p + done, n - done, MSG_NOSIGNAL) : ::recv(fd, p + done, n - done, 0);
    if (r > 0) {
      done += std::size_t(r);
    } else if (r == 0) {
      return "the connection was closed";
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      return std::strerror(errno);
    }
  }
  return "";
}

void put_u32(std::byte* out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = std::byte((v >> (8 * i)) & 0xff);
}
std::uint32_t get_u32(const std::byte* in) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(in[i]) << (8 * i);
  return v;
}

void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
}

sockaddr_in resolve(const RendezvousOptions& o) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(o.address.c_str(), nullptr, &hints, &found);
  if (rc != 0 || found == nullptr) {
    fail("rank {}/{}: cannot resolve MASTER_ADDR '{}' to an IPv4 address: {}", o.rank, o.world,
         o.address, ::gai_strerror(rc));
  }
  sockaddr_in addr{};
  std::memcpy(&addr, found->ai_addr, sizeof addr);
  ::freeaddrinfo(found);
  addr.sin_port = htons(static_cast<std::uint16_t>(o.port));
  return addr;
}

std::vector<std::byte> serve(const RendezvousOptions& o, const std::vector<std::byte>& blob) {
  DIFFTX_CHECK(blob.size() <= kMaxBlob, "rendezvous: blob of {} bytes is too large", blob.size());
  const auto deadline = Clock::now() + o.timeout;
  Socket listener(::socket(AF_INET, SOCK_STREAM, 0));
  if (listener.fd() < 0) fail("rank 0: cannot create a socket: {}", std::strerror(errno));
  const int one = 1;
  ::setsockopt(listener.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<std::uint16_t>(o.port));
  if (::bind(listener.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    fail("rank 0: cannot listen on port {} (MASTER_PORT): {}; pick a free port", o.port,
         std::strerror(errno));
  }
  if (::listen(listener.fd(), 128) != 0) {
    fail("rank 0: listen on port {} failed: {}", o.port, std::strerror(errno));
  }
  set_nonblocking(listener.fd());
  std::set<std::uint32_t> served;
  std::array<std::byte, 12> reply{};
  std::memcpy(reply.data(), kMagic.data(), 4);
  put_u32(reply.data() + 4, kVersion);
  put_u32(reply.data() + 8, static_cast<std::uint32_t>(blob.size()));
  while (served.size() + 1 < std::size_t(o.world)) {
    if (!wait_fd(listener.fd(), POLLIN, deadline)) {
      fail(
          "rank 0: only {} of the {} other ranks fetched the NCCL id from port {} within {:.0f} "
          "s: check that every rank started and that MASTER_ADDR/MASTER_PORT point here",
          served.size(), o.world - 1, o.port, std::chrono::duration<double>(o.timeout).count());
    }
    Socket peer(::accept(listener.fd(), nullptr, nullptr));
    if (peer.fd() < 0) continue;  // EAGAIN or a connection reset before accept
    set_nonblocking(peer.fd());
    std::array<std::byte, 16> hello{};
    // A stranger or a half-open peer must not hold the others up for long.
    const auto hello_deadline = std::min(deadline, Clock::now() + std::chrono::seconds(10));
    if (!transfer(peer.fd(), hello.data(), hello.size(), false, hello_deadline).empty() ||
        std::memcmp(hello.data(), kMagic.data(), 4) != 0) {
      continue;  // not one of ours
    }
    const std::uint32_t version = get_u32(hello.data() + 4), rank = get_u32(hello.data() + 8),
                        world = get_u32(hello.data() + 12);
    if (version != kVersion) {
      fail(
          "rank 0: a rank speaks rendezvous version {}, this is {}: run the same difftx on every "
          "host",
          version, kVersion);
    }
    if (world != std::uint32_t(o.world)) {
      fail(
          "rank 0: rank {} says the world size is {}, rank 0 has {}: set the same WORLD_SIZE "
          "everywhere",
          rank, world, o.world);
    }
    if (rank == 0 || rank >= world || !served.insert(rank).second) {
      fail(
          "rank 0: two processes claim rank {} (or it is out of range): give each process its "
          "own RANK",
          rank);
    }
    std::string err = transfer(peer.fd(), reply.data(), reply.size(), true, deadline);
    if (err.empty() && !blob.empty()) {
      err = transfer(peer.fd(), const_cast<std::byte*>(blob.data()), blob.size(), true, deadline);
    }
    if (!err.empty()) fail("rank 0: sending the NCCL id to rank {} failed: {}", rank, err);
  }
  return blob;
}

std::vector<std::byte> fetch(const RendezvousOptions& o) {
  const auto deadline = Clock::now() + o.timeout;
  const sockaddr_in addr = resolve(o);
  std::string last = "no answer";
  while (Clock::now() < deadline) {
    Socket s(::socket(AF_INET, SOCK_STREAM, 0));
    if (s.fd() < 0) fail("rank {}: cannot create a socket: {}", o.rank, std::strerror(errno));
    set_nonblocking(s.fd());
    int rc = ::connect(s.fd(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    if (rc != 0 && errno == EINPROGRESS) {
      const auto attempt = std::min(deadline, Clock::now() + std::chrono::seconds(2));
      int err = ETIMEDOUT;
      if (wait_fd(s.fd(), POLLOUT, attempt)) {
        socklen_t len = sizeof err;
        ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
      }
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      last = std::strerror(errno);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // rank 0 may not listen yet
      continue;
    }
    std::array<std::byte, 16> hello{};
    std::memcpy(hello.data(), kMagic.data(), 4);
    put_u32(hello.data() + 4, kVersion);
    put_u32(hello.data() + 8, static_cast<std::uint32_t>(o.rank));
    put_u32(hello.data() + 12, static_cast<std::uint32_t>(o.world));
    std::array<std::byte, 12> reply{};
    std::string err = transfer(s.fd(), hello.data(), hello.size(), true, deadline);
    if (err.empty()) err = transfer(s.fd(), reply.data(), reply.size(), false, deadline);
    if (!err.empty()) {
      fail(
          "rank {}/{}: the NCCL id exchange with {}:{} failed: {} (rank 0 refused this rank or "
          "ended; see its message)",
          o.rank, o.world, o.address, o.port, err);
    }
    if (std::memcmp(reply.data(), kMagic.data(), 4) != 0 || get_u32(reply.data() + 4) != kVersion) {
      fail(
          "rank {}/{}: {}:{} is not a difftx rendezvous of this version (another program on "
          "MASTER_PORT?)",
          o.rank, o.world, o.address, o.port);
    }
    const std::uint32_t len = get_u32(reply.data() + 8);
    if (len > kMaxBlob) fail("rank {}: the rendezvous announced {} bytes; refusing", o.rank, len);
    std::vector<std::byte> blob(len);
    if (len > 0) err = transfer(s.fd(), blob.data(), len, false, deadline);
    if (!err.empty()) fail("rank {}/{}: reading the NCCL id failed: {}", o.rank, o.world, err);
    return blob;
  }
  fail(
      "rank {}/{}: could not reach rank 0 at {}:{} within {:.0f} s ({}): check MASTER_ADDR, "
      "MASTER_PORT and that rank 0 is running",
      o.rank, o.world, o.address, o.port, std::chrono::duration<double>(o.timeout).count(), last);
}

}  // namespace

std::vector<std::byte> rendezvous_share(const RendezvousOptions& o,
                                        const std::vector<std::byte>& blob) {
  DIFFTX_CHECK(o.world >= 1 && o.rank >= 0 && o.rank < o.world,
               "rendezvous: rank {} of world {} is invalid", o.rank, o.world);
  if (o.world == 1) return blob;
  return o.rank == 0 ? serve(o, blob) : fetch(o);
}

int pick_free_port() {
  Socket s(::socket(AF_INET, SOCK_STREAM, 0));
  if (s.fd() < 0) fail("cannot create a socket: {}", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(s.fd(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    fail("cannot find a free TCP port: {}", std::strerror(errno));
  }
  return ntohs(addr.sin_port);
}

}  // namespace difftx::dist
