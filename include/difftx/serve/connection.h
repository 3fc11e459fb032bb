// Noticing that an HTTP client has gone away while its request is being answered: the socket
// of the connection (found from the request's addresses among this process's descriptors) and
// a non-blocking peek at it. cpp-httplib 0.11 gives handlers no socket, and a waiting handler
// writes nothing that could fail, so this is how a non-streamed or still-queued request learns
// that its client disconnected (streams also notice at their next write).
#pragma once

#include <string>

namespace difftx::serve {

// The descriptor of the TCP connection local_addr:local_port <-> remote_addr:remote_port, or -1.
// Linux (/proc/self/fd). Valid while the request's handler runs (the server closes it after).
int find_connection_socket(const std::string& local_addr, int local_port,
                           const std::string& remote_addr, int remote_port);

// Whether the peer has closed or reset the connection (never blocks; data waiting to be read,
// e.g. a pipelined request, counts as alive).
bool peer_closed(int fd);

}  // namespace difftx::serve
