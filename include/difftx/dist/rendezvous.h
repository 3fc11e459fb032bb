// The torchrun-style bootstrap: rank 0 serves a small blob (NCCL's 128-byte unique id) over TCP
// at MASTER_ADDR:MASTER_PORT and every other rank fetches it. Only this exchange goes over the
// socket; the collectives themselves run in NCCL. Every step has a deadline: a peer that never
// connects, a wrong world size, a stranger on the port or a server that never answers ends in
// an Error naming the address, the rank and what to check.
//
// Wire format (little-endian): the client sends "DTXR" u32 version u32 rank u32 world; the
// server answers "DTXR" u32 version u32 length, then length bytes.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace difftx::dist {

struct RendezvousOptions {
  std::string address;  // host name or IP of rank 0 (the server binds every interface)
  int port = 0;
  int rank = 0;
  int world = 1;
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

// Rank 0 passes the blob and gets it back once every other rank has fetched it; other ranks
// pass nothing and get rank 0's blob.
std::vector<std::byte> rendezvous_share(const RendezvousOptions& options,
                                        const std::vector<std::byte>& blob);

// A TCP port that was free on this host a moment ago (bind to port 0), for single-host launches.
int pick_free_port();

}  // namespace difftx::dist
