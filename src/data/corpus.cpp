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
#include "difftx/data/file_check.h"
#include "difftx/data/input_source.h"
#include "difftx/data/random.h"
#include "difftx/data/text.h"

namespace difftx::data {
namespace fs = std::filesystem;

Corpus Corpus::brown(const fs::path& dir) {
  Corpus c;
  c.kind_ = "brown";
  c.description_ =
      fmt::format("Brown corpus ({}@{}, {})", kBrownPackage, kBrownVersion, dir.string());
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

const char* input_format_name(InputFormat f) {
  switch (f) {
    case InputFormat::text:
      return "text";
    case InputFormat::jsonl:
      return "jsonl";
    case InputFormat::tokens:
      return "tokens";
  }
  return "?";
}

InputFormat input_format_of(const fs::path& path) {
  const fs::path inner = inner_file_name(path);
  const std::string ext = inner.extension().string();
  if (ext == ".jsonl" || ext == ".ndjson") return InputFormat::jsonl;
  if (ext == ".bin") return InputFormat::tokens;
  return InputFormat::text;
}

namespace {

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.' && name != "." && name != "..";
}

}  // namespace

Corpus Corpus::files(const std::vector<fs::path>& inputs,
                     const std::vector<fs::path>& validation_inputs) {
  Corpus c;
  c.kind_ = "files";
  std::set<fs::path> seen;
  std::vector<std::string> shown;
  std::size_t counts[3] = {0, 0, 0};
  auto add_input = [&](const fs::path& input, bool validation) {
    std::error_code ec;
    const std::string kind = describe_path_kind(input);
    if (kind == "missing") {
      fail("input '{}' does not exist: pass existing text files or folders with --input",
           input.string());
    }
    std::vector<std::pair<fs::path, std::string>> found;  // (path, key)
    if (kind == "a folder") {
      fs::recursive_directory_iterator it(input, fs::directory_options::none, ec), end;
      if (ec) fail("cannot list folder '{}': {}", input.string(), ec.message());
      for (; it != end; it.increment(ec)) {
        if (ec) fail("cannot list folder '{}': {}", input.string(), ec.message());
        if (hidden(it->path())) {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_directory()) continue;
        // Anything else must be a regular file: a FIFO would block, a dangling link is lost data.
        require_regular_file(it->path(), "input",
                             "remove it from the input folder or pass the files one by one");
        // The key names the document whether or not it is compressed.
        found.emplace_back(it->path(), (fs::relative(it->path(), input).parent_path() /
                                        inner_file_name(it->path()))
                                           .generic_string());
      }
      std::sort(found.begin(), found.end());
    } else {
      require_regular_file(input, "input", "pass text, JSONL or token files, or folders of them");
      found.emplace_back(input, inner_file_name(input));
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
      d.format = input_format_of(path);
      d.validation = validation;
      ++counts[static_cast<int>(d.format)];
      c.docs_.push_back(std::move(d));
    }
    shown.push_back(validation ? "validation " + input.string() : input.string());
  };
  for (const fs::path& input : inputs) add_input(input, false);
  for (const fs::path& input : validation_inputs) add_input(input, true);
  std::string joined, what;
  for (const auto& s : shown) joined += (joined.empty() ? "" : ", ") + s;
  const char* names[3] = {"text", "JSONL", "token"};
  for (int f = 0; f < 3; ++f) {
    if (counts[f] == 0) continue;
    what += fmt::format("{}{} {} file{}", what.empty() ? "" : ", ", counts[f], names[f],
                        counts[f] == 1 ? "" : "s");
  }
  c.description_ = fmt::format("{} from {}", what.empty() ? "0 files" : what, joined);
  return c;
}

bool Corpus::any_validation_inputs() const {
  return std::any_of(docs_.begin(), docs_.end(), [](const Doc& d) { return d.validation; });
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

bool hash_chooses_validation(const std::string& key, double val_fraction, std::uint64_t seed) {
  return static_cast<double>(split_order_key(seed, key) >> 11) * 0x1.0p-53 < val_fraction;
}

std::string split_rule_text(double val_fraction, std::uint64_t seed) {
  return fmt::format(
      "whole files: ordered by SplitMix64(FNV-1a-64(seed {} as 8 little-endian bytes + file "
      "key)), the first round(n * {}) (at least 1, at most n - 1) are validation; JSONL lines "
      "(key '<file key>:<line>'): validation when that hash / 2^64 < {}; a single document is "
      "cut at the line break nearest to {:.4g} of its length and its tail is validation; files "
      "given with --val-input are validation",
      seed, val_fraction, val_fraction, 1.0 - val_fraction);
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

TailCutFinder::TailCutFinder(std::uint64_t size, double val_fraction) : n_(size) {
  auto target = static_cast<std::uint64_t>(static_cast<double>(size) * (1.0 - val_fraction));
  target_ = size < 2 ? size : std::clamp<std::uint64_t>(target, 1, size - 1);
}

void TailCutFinder::add(const char* data, std::size_t n) {
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint64_t i = seen_ + k;
    const char c = data[k];
    if (i + 4 >= target_ && i <= target_) window_[i + 4 - target_] = static_cast<unsigned char>(c);
    if (c != '\n' && c != ' ') continue;
    const bool before = i + 1 <= target_;  // index <= target - 1
    if (c == '\n') {
      if (before) {
        nl_before_ = i;
        has_nl_before_ = true;
      } else if (!has_nl_after_) {
        nl_after_ = i;
        has_nl_after_ = true;
      }
    } else {
      if (before) {
        sp_before_ = i;
        has_sp_before_ = true;
      } else if (!has_sp_after_) {
        sp_after_ = i;
        has_sp_after_ = true;
      }
    }
  }
  seen_ += n;
}

std::uint64_t TailCutFinder::cut() const {
  if (n_ < 2) return n_;
  // As single_document_cut's nearest_after: cut just after the nearest separator.
  auto nearest = [&](bool has_before, std::uint64_t before, bool has_after,
                     std::uint64_t after) -> std::uint64_t {
    std::uint64_t best = 0;
    if (has_before && before + 1 < n_) best = before + 1;
    if (has_after && after + 1 < n_ && (best == 0 || after + 1 - target_ < target_ - best)) {
      best = after + 1;
    }
    return best;
  };
  if (auto c = nearest(has_nl_before_, nl_before_, has_nl_after_, nl_after_); c > 0) return c;
  if (auto c = nearest(has_sp_before_, sp_before_, has_sp_after_, sp_after_); c > 0) return c;
  // A character boundary at or before target (UTF-8 continuation bytes are 10xxxxxx).
  std::uint64_t end = target_;
  int back = 0;
  while (end > 0 && back < 4 && (window_[4 - back] & 0xC0) == 0x80) {
    --end;
    ++back;
  }
  return end > 0 ? end : 1;
}

}  // namespace difftx::data
