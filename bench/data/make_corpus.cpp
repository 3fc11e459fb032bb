// Writes a synthetic multi-GB corpus for measuring `difftx data prepare` at scale: documents
// of Zipf-distributed words (a 200k-word vocabulary with a long tail, plus numbers and rare
// strings so the word cache also misses), in a mix of formats: plain .txt files, .txt.gz
// files and .jsonl.zst files (one document per line). Seeded; prints what it wrote.
//   make_corpus --out DIR [--gigabytes G] [--files N] [--seed S]
#include <fmt/format.h>
#include <zlib.h>
#include <zstd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/data/random.h"

namespace {
namespace fs = std::filesystem;
using difftx::data::Rng;

struct Vocabulary {
  std::vector<std::string> words;
  std::vector<double> cumulative;  // Zipf(1.1) over ranks
};

Vocabulary make_vocabulary(Rng& rng, std::size_t n) {
  Vocabulary v;
  const char* letters = "etaoinshrdlcumwfgypbvkjxqz";
  double total = 0;
  for (std::size_t r = 0; r < n; ++r) {
    const std::size_t len = 1 + rng.below(3) + rng.below(4) + (r > 1000 ? rng.below(6) : 0);
    std::string w;
    for (std::size_t i = 0; i < len; ++i)
      w += letters[std::min<std::size_t>(25, rng.below(13) + rng.below(14))];
    if (rng.below(10) == 0)
      w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
    v.words.push_back(w);
    total += 1.0 / std::pow(static_cast<double>(r + 1), 1.1);
    v.cumulative.push_back(total);
  }
  for (double& c : v.cumulative) c /= total;
  return v;
}

std::string make_document(Rng& rng, const Vocabulary& v, std::size_t bytes) {
  std::string doc;
  std::size_t sentence = 0;
  while (doc.size() < bytes) {
    const double u = rng.uniform();
    const std::size_t r = static_cast<std::size_t>(
        std::lower_bound(v.cumulative.begin(), v.cumulative.end(), u) - v.cumulative.begin());
    if (rng.below(50) == 0) {
      doc += std::to_string(rng.below(100000));  // numbers: mostly cache misses
    } else if (rng.below(200) == 0) {
      for (int i = 0; i < 8; ++i) doc += static_cast<char>('a' + rng.below(26));  // rare strings
    } else {
      doc += v.words[std::min(r, v.words.size() - 1)];
    }
    ++sentence;
    if (sentence > 8 && rng.below(10) == 0) {
      doc += rng.below(8) == 0 ? ".\n\n" : ". ";
      sentence = 0;
    } else {
      doc += rng.below(15) == 0 ? ", " : " ";
    }
  }
  doc += "\n";
  return doc;
}

std::string gzip_bytes(const std::string& text) {
  z_stream z{};
  deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, text.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd_bytes(const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path out;
  double gigabytes = 3.0;
  std::size_t files = 300;
  std::uint64_t seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--out")
      out = argv[i + 1];
    else if (a == "--gigabytes")
      gigabytes = std::stod(argv[i + 1]);
    else if (a == "--files")
      files = std::stoul(argv[i + 1]);
    else if (a == "--seed")
      seed = std::stoull(argv[i + 1]);
  }
  if (out.empty() || files < 3) {
    std::fprintf(stderr,
                 "usage: make_corpus --out DIR [--gigabytes G] [--files N>=3] [--seed S]\n");
    return 2;
  }
  try {
    fs::create_directories(out);
    Rng rng(seed);
    const Vocabulary vocab = make_vocabulary(rng, 200000);
    const auto per_file = static_cast<std::size_t>(gigabytes * 1e9 / static_cast<double>(files));
    std::uint64_t text_bytes = 0, disk_bytes = 0;
    for (std::size_t f = 0; f < files; ++f) {
      std::string name, bytes;
      if (f % 3 == 0) {
        // One document per plain file.
        bytes = make_document(rng, vocab, per_file);
        text_bytes += bytes.size();
        name = fmt::format("text/doc{:05}.txt", f);
      } else if (f % 3 == 1) {
        const std::string doc = make_document(rng, vocab, per_file);
        text_bytes += doc.size();
        bytes = gzip_bytes(doc);
        name = fmt::format("gz/doc{:05}.txt.gz", f);
      } else {
        // Documents of 2-20 kB as JSON lines.
        std::string jsonl;
        std::size_t produced = 0;
        while (produced < per_file) {
          const std::string doc = make_document(rng, vocab, 2000 + rng.below(18000));
          produced += doc.size();
          jsonl += nlohmann::json{{"id", produced}, {"text", doc}}.dump() + "\n";
        }
        text_bytes += produced;
        bytes = zstd_bytes(jsonl);
        name = fmt::format("jsonl/shard{:05}.jsonl.zst", f);
      }
      fs::create_directories((out / name).parent_path());
      difftx::write_file_atomic(out / name, std::string_view(bytes));
      disk_bytes += bytes.size();
    }
    fmt::print("make_corpus: {} files in {}: {:.2f} GB of text, {:.2f} GB on disk\n", files,
               out.string(), static_cast<double>(text_bytes) / 1e9,
               static_cast<double>(disk_bytes) / 1e9);
  } catch (const difftx::Error& e) {
    std::fprintf(stderr, "make_corpus: %s\n", e.what());
    return 1;
  }
  return 0;
}
