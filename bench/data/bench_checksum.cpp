// Checksum speed on a multi-GB token shard (issue 16): XXH3-64 (core/checksum.h, what difftx
// uses) against FNV-1a-64 (what shards and tensor checksums used before), both over the
// memory-mapped payload of one shard, plus opening the shard with full verification
// (checksum and id range check). The shard (DIFFTX_BENCH_SHARD_GB, default 2 GB) is written
// to a scratch folder under $TMPDIR once and read from the page cache.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/data/random.h"
#include "difftx/data/shard.h"

namespace {
namespace fs = std::filesystem;
using namespace difftx;

// The previous algorithm, kept here only as the benchmark's baseline.
std::uint64_t fnv1a64(const unsigned char* p, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

struct Shard {
  fs::path dir, path;
  const unsigned char* map = nullptr;
  std::size_t size = 0;
  Shard() {
    const char* gb_env = std::getenv("DIFFTX_BENCH_SHARD_GB");
    const double gb = gb_env != nullptr ? std::atof(gb_env) : 2.0;
    std::string pattern = (fs::temp_directory_path() / "difftx-bench-checksum-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = pattern;
    path = dir / "train-00000.tokens";
    const auto tokens = static_cast<std::uint64_t>(gb * 1e9 / 2);
    data::ShardWriter w(path, 50304);
    data::Rng rng(1);
    std::vector<std::int32_t> chunk(1 << 20);
    for (std::uint64_t done = 0; done < tokens; done += chunk.size()) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), tokens - done));
      for (std::size_t i = 0; i < n; ++i) chunk[i] = static_cast<std::int32_t>(rng.below(50304));
      w.append(std::span<const std::int32_t>(chunk.data(), n));
    }
    w.finish();
    const int fd = ::open(path.c_str(), O_RDONLY);
    struct stat st {};
    ::fstat(fd, &st);
    size = static_cast<std::size_t>(st.st_size);
    map = static_cast<const unsigned char*>(::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0));
    ::close(fd);
    benchmark::DoNotOptimize(checksum64(map, size));  // into the page cache
  }
  ~Shard() {
    ::munmap(const_cast<unsigned char*>(map), size);
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

const Shard& shard() {
  static const Shard s;
  return s;
}

void report(benchmark::State& state, std::size_t bytes) {
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(bytes) * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
  state.counters["shard_GB"] = static_cast<double>(bytes) / 1e9;
}

void BM_Xxh3(benchmark::State& state) {
  const Shard& s = shard();
  for (auto _ : state) benchmark::DoNotOptimize(checksum64(s.map + 64, s.size - 64));
  report(state, s.size - 64);
}

void BM_Fnv1a(benchmark::State& state) {
  const Shard& s = shard();
  for (auto _ : state) benchmark::DoNotOptimize(fnv1a64(s.map + 64, s.size - 64));
  report(state, s.size - 64);
}

// What opening a shard for training costs: header, XXH3 of the payload, every id's range.
void BM_OpenShardVerified(benchmark::State& state) {
  const Shard& s = shard();
  for (auto _ : state) {
    data::ShardReader r(s.path, true);
    benchmark::DoNotOptimize(r.size());
  }
  report(state, s.size - 64);
}

BENCHMARK(BM_Xxh3)->Unit(benchmark::kMillisecond)->Iterations(5)->UseRealTime();
BENCHMARK(BM_Fnv1a)->Unit(benchmark::kMillisecond)->Iterations(2)->UseRealTime();
BENCHMARK(BM_OpenShardVerified)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
