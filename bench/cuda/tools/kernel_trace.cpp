// A CUPTI injection library that records every kernel's (and memory copy's) start and end on the
// GPU, graph nodes included, for timing a graph-launched decode step where Nsight Systems is not
// installed (the device image has Nsight Compute only, which times each kernel alone and so misses
// the overlap of programmatic dependent launch). Load it with
//   CUDA_INJECTION64_PATH=libdifftx_kernel_trace.so DIFFTX_KERNEL_TRACE=trace.csv difftx ...
// At exit it writes "start_ns,end_ns,name" lines (mangled kernel names; copies as memcpy_HtoD,
// memcpy_DtoH, memcpy_DtoD or memcpy_other) to DIFFTX_KERNEL_TRACE;
// scripts/gpu/trace_table.py turns them into a per-kernel table.
#include <cupti.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct KernelSpan {
  unsigned long long start, end;
  std::string name;
};

std::mutex spans_mutex;
std::vector<KernelSpan>* spans = nullptr;  // leaked on purpose: read in an atexit handler

constexpr size_t kBufferBytes = 8u << 20;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* record = nullptr;
  std::lock_guard<std::mutex> lock(spans_mutex);
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
      const char* name = m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_HTOD   ? "memcpy_HtoD"
                         : m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOH ? "memcpy_DtoH"
                         : m->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOD ? "memcpy_DtoD"
                                                                          : "memcpy_other";
      spans->push_back({m->start, m->end, name});
      continue;
    }
    if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL &&
        record->kind != CUPTI_ACTIVITY_KIND_KERNEL) {
      continue;
    }
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
    spans->push_back({k->start, k->end, k->name ? k->name : "?"});
  }
  std::free(buffer);
}

void write_trace() {
  cuptiActivityFlushAll(1);
  const char* path = std::getenv("DIFFTX_KERNEL_TRACE");
  if (!path) path = "kernel-trace.csv";
  const std::string tmp = std::string(path) + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "kernel_trace: cannot write %s\n", tmp.c_str());
    return;
  }
  std::lock_guard<std::mutex> lock(spans_mutex);
  std::fprintf(f, "start_ns,end_ns,name\n");
  for (const KernelSpan& s : *spans)
    std::fprintf(f, "%llu,%llu,%s\n", s.start, s.end, s.name.c_str());
  const bool ok = std::fclose(f) == 0 && std::rename(tmp.c_str(), path) == 0;
  std::fprintf(stderr, "kernel_trace: %zu kernels and copies %s %s\n", spans->size(),
               ok ? "written to" : "NOT written to", path);
}

}  // namespace

extern "C" int InitializeInjection() {
  spans = new std::vector<KernelSpan>();
  spans->reserve(1 << 20);
  if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
      cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS ||
      cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY) != CUPTI_SUCCESS) {
    std::fprintf(stderr, "kernel_trace: CUPTI activity tracing could not be enabled\n");
    return 0;
  }
  std::atexit(write_trace);
  return 1;
}
