// Paged decode attention diagnostics: DIFFTX_PAGED_TIMELINE=N makes the N-th call (counted from
// 1, calls made while a graph is captured not counted: use an engine without graphs) record each
// block's global-timer stamps (paged_attention_common.cuh, Stamp), wait for the call and print,
// per stamp, how many blocks reached it and the minimum, median and maximum time from the first
// block's start, in microseconds, to stderr; DIFFTX_PAGED_TIMELINE_CALLS=K (1 to 16, default 1)
// does so for K calls from the N-th on, each into its own zeroed buffer, so that one run shows
// how much a single call's table varies. In a decode step the call runs between the kernels it
// really runs between, with programmatic dependent launch as usual; nothing is queued on the
// stream around it. Costs nothing when unset (one null pointer test per stamp).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "paged_attention_common.cuh"

namespace difftx::cuda::paged {
namespace {

constexpr std::size_t kTimelineBlocks = 1 << 16;  // grids larger than this are not recorded
constexpr std::size_t kCallStamps = kTimelineBlocks * kStamps;  // one recorded call's buffer
constexpr long kMaxTimelineCalls = 16;

long timeline_call() {
  static const long call = [] {
    const char* env = std::getenv("DIFFTX_PAGED_TIMELINE");
    return env ? std::atol(env) : 0L;
  }();
  return call;
}

// Calls recorded from timeline_call() on (DIFFTX_PAGED_TIMELINE_CALLS, clamped to 1..16).
long timeline_calls() {
  static const long calls = [] {
    const char* env = std::getenv("DIFFTX_PAGED_TIMELINE_CALLS");
    return std::clamp(env ? std::atol(env) : 1L, 1L, kMaxTimelineCalls);
  }();
  return calls;
}

// The stamps' buffers, zeroed, one per recorded call: allocated on the first call, long before
// the recorded ones, so that a recorded call has nothing extra on its stream.
unsigned long long* timeline_buffer() {
  static unsigned long long* buffer = [] {
    void* p = nullptr;
    const std::size_t bytes = kCallStamps * timeline_calls() * sizeof(unsigned long long);
    if (cudaMalloc(&p, bytes) != cudaSuccess || cudaMemset(p, 0, bytes) != cudaSuccess ||
        cudaDeviceSynchronize() != cudaSuccess) {
      std::fprintf(stderr, "DIFFTX_PAGED_TIMELINE: no device buffer; nothing recorded\n");
      return static_cast<unsigned long long*>(nullptr);
    }
    return static_cast<unsigned long long*>(p);
  }();
  return buffer;
}

}  // namespace

unsigned long long* timeline_for_call(std::size_t blocks, cudaStream_t stream) {
  static std::atomic<long> calls{0};
  const long want = timeline_call();
  if (want <= 0) return nullptr;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess ||
      capture != cudaStreamCaptureStatusNone) {
    return nullptr;  // (and no allocation while a graph is captured)
  }
  unsigned long long* buffer = timeline_buffer();
  const long call = ++calls;
  if (buffer == nullptr || call < want || call >= want + timeline_calls() ||
      blocks > kTimelineBlocks) {
    return nullptr;
  }
  return buffer + std::size_t(call - want) * kCallStamps;
}

void report_timeline(unsigned long long* timeline, dim3 grid, const char* variant,
                     cudaStream_t stream) {
  const std::size_t blocks = std::size_t(grid.x) * grid.y * grid.z;
  std::vector<unsigned long long> t(blocks * kStamps);
  if (cudaStreamSynchronize(stream) != cudaSuccess ||
      cudaMemcpy(t.data(), timeline, t.size() * sizeof(t[0]), cudaMemcpyDeviceToHost) !=
          cudaSuccess) {
    std::fprintf(stderr, "DIFFTX_PAGED_TIMELINE: the recorded call failed\n");
    return;
  }
  unsigned long long first = ~0ull;
  for (std::size_t b = 0; b < blocks; ++b) {
    if (t[b * kStamps + kStampStart] != 0) first = std::min(first, t[b * kStamps + kStampStart]);
  }
  static const char* names[kStamps] = {"start",  "length", "slots",   "issued",  "waited",
                                       "landed", "tiles",  "reduced", "arrived", "done"};
  const long call = timeline_call() + long((timeline - timeline_buffer()) / kCallStamps);
  std::fprintf(stderr,
               "paged attention timeline (call %ld, %s, grid %u x %u x %u): us from the first "
               "block's start\n  %-8s %7s %8s %8s %8s\n",
               call, variant, grid.x, grid.y, grid.z, "stamp", "blocks", "min", "median", "max");
  for (int s = 0; s < kStamps; ++s) {
    std::vector<double> us;
    for (std::size_t b = 0; b < blocks; ++b) {
      const unsigned long long v = t[b * kStamps + s];
      if (v != 0) us.push_back(double(v - first) * 1e-3);
    }
    if (us.empty()) continue;
    std::sort(us.begin(), us.end());
    std::fprintf(stderr, "  %-8s %7zu %8.2f %8.2f %8.2f\n", names[s], us.size(), us.front(),
                 us[us.size() / 2], us.back());
  }
}

}  // namespace difftx::cuda::paged
