// Data pipeline speed: encode throughput (MB/s) of SentencePiece's own encoder on one core
// (the baseline: line by line, as spm_encode does), of difftx's library path, of its cached
// encoder (one core) and of the parallel encoder `data prepare` uses (all cores); and the wall
// time of `difftx data prepare` on the default Brown corpus. Needs the corpus installed by
// scripts/fetch-corpus.sh.
#include <benchmark/benchmark.h>
#include <fmt/core.h>
#include <sentencepiece_processor.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>

#include "difftx/core/error.h"
#include "difftx/data/brown.h"
#include "difftx/data/corpus.h"
#include "difftx/data/parallel_encoder.h"
#include "difftx/data/prepare.h"
#include "difftx/data/tokenizer.h"

namespace {
namespace fs = std::filesystem;
using namespace difftx::data;

// A scratch folder for the benchmark's outputs, removed at exit.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    std::string pattern = (fs::temp_directory_path() / "difftx-bench-data-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

const fs::path& scratch_dir() {
  static const ScratchDir dir;
  return dir.path;
}

// The whole Brown corpus as one text, and the tokenizer `data prepare` trains on it.
struct BrownFixture {
  std::string text;
  Tokenizer tokenizer;
};

const BrownFixture& brown() {
  static const BrownFixture f = [] {
    BrownFixture b;
    const Corpus corpus = Corpus::brown(default_brown_dir());
    for (std::size_t i = 0; i < corpus.size(); ++i) b.text += corpus.text(i);
    PrepareOptions o;
    o.out_dir = scratch_dir() / "tokenizer-source";
    o.progress = difftx::ProgressMode::quiet;
    const PrepareSummary s = prepare_data(o);
    b.tokenizer = Tokenizer::load(s.tokenizer_path);
    return b;
  }();
  return f;
}

void report_mb_per_s(benchmark::State& state, std::size_t bytes) {
  // Shown as "MB=<rate>/s": decimal megabytes of UTF-8 text encoded per second.
  state.counters["MB"] =
      benchmark::Counter(static_cast<double>(bytes) * static_cast<double>(state.iterations()) / 1e6,
                         benchmark::Counter::kIsRate);
  state.counters["text_MB"] = static_cast<double>(bytes) / 1e6;
}

// SentencePiece's own encoder on one core: the text line by line through
// SentencePieceProcessor::Encode, as `spm_encode` does (the throughput baseline).
void BM_EncodeSentencePieceOneCore(benchmark::State& state) {
  const BrownFixture& b = brown();
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.LoadFromSerializedProto(b.tokenizer.serialized()).ok()) {
    state.SkipWithError("SentencePiece cannot load the tokenizer");
    return;
  }
  std::vector<std::string_view> lines;
  for (std::size_t pos = 0; pos < b.text.size();) {
    std::size_t end = b.text.find('\n', pos);
    if (end == std::string::npos) end = b.text.size();
    lines.emplace_back(b.text.data() + pos, end - pos);
    pos = end + 1;
  }
  std::size_t tokens = 0;
  std::vector<int> ids;
  for (auto _ : state) {
    tokens = 0;
    for (std::string_view line : lines) {
      (void)sp.Encode(line, &ids);
      tokens += ids.size() + 1;  // + the newline
    }
    benchmark::DoNotOptimize(tokens);
  }
  report_mb_per_s(state, b.text.size());
  state.counters["tokens"] = static_cast<double>(tokens);
}

// Tokenizer::encode: every word through SentencePiece (16 kB per library call).
void BM_EncodeLibrary(benchmark::State& state) {
  const BrownFixture& b = brown();
  std::size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = b.tokenizer.encode(b.text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  report_mb_per_s(state, b.text.size());
  state.counters["tokens"] = static_cast<double>(tokens);
}

// CachedEncoder with an empty cache each time, as `data prepare` uses it (one thread).
void BM_EncodeCachedCold(benchmark::State& state) {
  const BrownFixture& b = brown();
  for (auto _ : state) {
    CachedEncoder enc(b.tokenizer);
    std::vector<std::int32_t> ids;
    enc.encode(b.text, ids);
    benchmark::DoNotOptimize(ids.data());
  }
  report_mb_per_s(state, b.text.size());
}

// CachedEncoder once every word of the text is cached (steady state on a large corpus).
void BM_EncodeCachedWarm(benchmark::State& state) {
  const BrownFixture& b = brown();
  CachedEncoder enc(b.tokenizer);
  std::vector<std::int32_t> ids;
  enc.encode(b.text, ids);
  for (auto _ : state) {
    ids.clear();
    enc.encode(b.text, ids);
    benchmark::DoNotOptimize(ids.data());
  }
  report_mb_per_s(state, b.text.size());
}

// ParallelEncoder as `data prepare` runs it: 1 MB pieces on `threads` threads, each encoder's
// cache warm (the steady state of a long run).
void BM_EncodeParallel(benchmark::State& state) {
  const BrownFixture& b = brown();
  const int threads = static_cast<int>(state.range(0));
  ParallelEncoder encoder(b.tokenizer, threads);
  std::vector<std::string_view> pieces;
  std::size_t at = 0;
  for (std::size_t len : cut_at_unit_boundaries(b.text, 1 << 20)) {
    pieces.emplace_back(b.text.data() + at, len);
    at += len;
  }
  std::vector<std::vector<std::int32_t>> ids;
  encoder.run(pieces, ids);
  for (auto _ : state) {
    encoder.run(pieces, ids);
    benchmark::DoNotOptimize(ids.data());
  }
  report_mb_per_s(state, b.text.size());
  state.counters["threads"] = threads;
}

// `difftx data prepare` with its defaults on the Brown corpus (all cores).
void BM_PrepareBrown(benchmark::State& state) {
  PrepareSummary s;
  for (auto _ : state) {
    PrepareOptions o;
    o.out_dir = scratch_dir() / "prepared";
    o.progress = difftx::ProgressMode::quiet;
    s = prepare_data(o);
  }
  state.counters["documents"] = static_cast<double>(s.documents);
  state.counters["bytes"] = static_cast<double>(s.bytes());
  state.counters["tokens"] = static_cast<double>(s.tokens());
  state.counters["bytes_per_token"] = s.bytes_per_token();
  state.counters["read_s"] = s.read_seconds;
  state.counters["tokenizer_s"] = s.tokenizer_seconds;
  state.counters["encode_write_s"] = s.encode_seconds;
  state.counters["total_s"] = s.seconds;
}

BENCHMARK(BM_EncodeSentencePieceOneCore)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0)
    ->UseRealTime();
BENCHMARK(BM_EncodeLibrary)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_EncodeCachedCold)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_EncodeCachedWarm)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_EncodeParallel)
    ->Arg(1)
    ->Arg(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())))
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0)
    ->UseRealTime();
BENCHMARK(BM_PrepareBrown)->Unit(benchmark::kSecond)->Iterations(1)->Repetitions(3)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    (void)brown();  // fails clearly here if the corpus is not installed
  } catch (const difftx::Error& e) {
    fmt::print(stderr, "bench_data: {}\n", e.what());
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
