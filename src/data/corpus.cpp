// Corpus listing (Brown package or user files), document loading and the train/val split.
#include "difftx/data/corpus.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/data/brown.h"
#include "difftx/data/random.h"
#include "difftx/data/text.h"

namespace difftx::data {
namespace fs = std::filesystem;

Corpus Corpus::brown(const fs::path& dir) {
  Corpus c;
  c.kind_ = "brown";
  c.description_ = fmt::format("Brown corpus ({}@{}, {})", kBrownPackage, kBrownVersion, dir.string());
  for (const BrownFile& f : list_brown_files(dir)) {
    std::string tagged = read_file_text(f.path);
    require_text(tagged, f.path.string());
    Doc d;
    d.source = f.path.string();
    d.key = f.id;
    d.text = brown_to_text(tagged);
    d.size_hint = d.text.size();
    c.docs_.push_back(std::move(d));
  }
  return c;
}

namespace {

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.' && name != "." && name != "..";
}

}  // namespace

Corpus Corpus::files(const std::vector<fs::path>& inputs) {
  Corpus c;
  c.kind_ = "files";
  std::set<fs::path> seen;
  std::vector<std::string> shown;
  for (const fs::path& input : inputs) {
    std::error_code ec;
    const fs::file_status st = fs::status(input, ec);
    if (ec || !fs::exists(st)) {
      fail("input '{}' does not exist: pass existing text files or folders with --input",
           input.string());
    }
    std::vector<std::pair<fs::path, std::string>> found;  // (path, key)
    if (fs::is_directory(st)) {
      fs::recursive_directory_iterator it(input, fs::directory_options::none, ec), end;
      if (ec) fail("cannot list folder '{}': {}", input.string(), ec.message());
      for (; it != end; it.increment(ec)) {
        if (ec) fail("cannot list folder '{}': {}", input.string(), ec.message());
        if (hidden(it->path())) {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file()) {
          found.emplace_back(it->path(), fs::relative(it->path(), input).generic_string());
        }
      }
      std::sort(found.begin(), found.end());
    } else if (fs::is_regular_file(st)) {
      found.emplace_back(input, input.filename().string());
    } else {
      fail("input '{}' is neither a regular file nor a folder", input.string());
    }
    for (auto& [path, key] : found) {
      fs::path canonical = fs::weakly_canonical(path, ec);
      if (!seen.insert(ec ? path : canonical).second) continue;  // named twice
      Doc d;
      d.source = path.string();
      d.key = key;
      d.path = path;
      d.size_hint = fs::file_size(path, ec);
      if (ec) fail("cannot read the size of '{}': {}", path.string(), ec.message());
      c.docs_.push_back(std::move(d));
    }
    shown.push_back(input.string());
  }
  std::string joined;
  for (const auto& s : shown) joined += (joined.empty() ? "" : ", ") + s;
  c.description_ = fmt::format("{} text file{} from {}", c.docs_.size(),
                               c.docs_.size() == 1 ? "" : "s", joined);
  return c;
}

std::uint64_t Corpus::total_size_hint() const {
  std::uint64_t total = 0;
  for (const auto& d : docs_) total += d.size_hint;
  return total;
}

std::string Corpus::text(std::size_t i) const {
  const Doc& d = docs_.at(i);
  if (d.path.empty()) return d.text;
  std::string text = read_file_text(d.path);
  require_text(text, d.source);
  return text;
}

namespace {

// The split rule's order key. The rule is a promise kept across versions (the same corpus and
// seed give the same split, so results stay comparable), so it keeps the FNV-1a-64 it was
// defined with; it orders documents and is not a checksum (those are core/checksum.h's).
std::uint64_t split_order_key(std::uint64_t seed, const std::string& key) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto add = [&h](unsigned char byte) { h = (h ^ byte) * 0x100000001b3ULL; };
  for (int i = 0; i < 8; ++i) add(static_cast<unsigned char>(seed >> (8 * i)));
  for (char c : key) add(static_cast<unsigned char>(c));
  return mix64(h);
}

}  // namespace

std::vector<bool> choose_validation(const std::vector<std::string>& keys, double val_fraction,
                                    std::uint64_t seed) {
  const std::size_t n = keys.size();
  std::vector<bool> val(n, false);
  if (val_fraction <= 0 || n < 2) return val;
  auto k = static_cast<std::size_t>(std::llround(static_cast<double>(n) * val_fraction));
  k = std::clamp<std::size_t>(k, 1, n - 1);
  std::vector<std::pair<std::uint64_t, std::size_t>> order(n);
  for (std::size_t i = 0; i < n; ++i) {
    order[i] = {split_order_key(seed, keys[i]), i};
  }
  std::sort(order.begin(), order.end());
  for (std::size_t j = 0; j < k; ++j) val[order[j].second] = true;
  return val;
}

std::string split_rule_text(double val_fraction, std::uint64_t seed) {
  return fmt::format(
      "documents ordered by SplitMix64(FNV-1a-64(seed {} as 8 little-endian bytes + document "
      "key)); the "
      "first round(n * {}) (at least 1, at most n - 1) are validation; a single document is "
      "cut at the line break nearest to {:.4g} of its length and its tail is validation",
      seed, val_fraction, 1.0 - val_fraction);
}

std::size_t single_document_cut(const std::string& text, double val_fraction) {
  const std::size_t n = text.size();
  if (n < 2) return n;
  auto target = static_cast<std::size_t>(static_cast<double>(n) * (1.0 - val_fraction));
  target = std::clamp<std::size_t>(target, 1, n - 1);
  // Nearest character `c` to target, cutting just after it; 0 if none inside (0, n).
  auto nearest_after = [&](char c) -> std::size_t {
    std::size_t best = 0;
    std::size_t before = text.rfind(c, target - 1);
    if (before != std::string::npos && before + 1 < n) best = before + 1;
    std::size_t after = text.find(c, target);
    if (after != std::string::npos && after + 1 < n) {
      if (best == 0 || after + 1 - target < target - best) best = after + 1;
    }
    return best;
  };
  if (std::size_t cut = nearest_after('\n'); cut > 0) return cut;
  if (std::size_t cut = nearest_after(' '); cut > 0) return cut;
  std::size_t cut = utf8_prefix_length(text, target);
  if (cut == 0 || cut >= n) cut = utf8_prefix_length(text, 1);
  return cut;
}

}  // namespace difftx::data
