// Connection liveness: locate a request's socket and peek at it without blocking.
#include "difftx/serve/connection.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace difftx::serve {
namespace {

// Port and numeric address of a socket address (IPv4, or IPv6 with v4-mapped addresses shown
// as IPv4, as cpp-httplib reports them).
bool describe(const sockaddr_storage& addr, std::string& host, int& port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    if (!inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf)) return false;
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    if (!inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf)) return false;
    port = ntohs(a->sin6_port);
  } else {
    return false;
  }
  host = buf;
  return true;
}

bool same_host(const std::string& a, const std::string& b) {
  if (a == b) return true;
  static const std::string mapped = "::ffff:";
  auto strip = [](const std::string& s) {
    return s.rfind(mapped, 0) == 0 ? s.substr(mapped.size()) : s;
  };
  return strip(a) == strip(b);
}

}  // namespace

int find_connection_socket(const std::string& local_addr, int local_port,
                           const std::string& remote_addr, int remote_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(int(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
    if (getpeername(int(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    std::string lh, ph;
    int lp = -1, pp = -1;
    if (!describe(local, lh, lp) || !describe(peer, ph, pp)) continue;
    if (lp == local_port && pp == remote_port && same_host(ph, remote_addr) &&
        (local_addr.empty() || same_host(lh, local_addr))) {
      found = int(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

bool peer_closed(int fd) {
  if (fd < 0) return false;
  char byte;
  const ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;
  if (n == 0) return true;  // orderly shutdown by the peer
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

}  // namespace difftx::serve
