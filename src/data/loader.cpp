// Shard sets, the shuffled resumable training loader and the sequential evaluation loader.
#include "difftx/data/loader.h"

#include <algorithm>
#include <limits>

#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/core/json_fields.h"
#include "difftx/data/data_folder.h"
#include "difftx/data/file_check.h"
#include "difftx/data/permutation.h"
#include "difftx/data/random.h"
#include "difftx/data/tokenizer.h"

namespace difftx::data {
namespace fs = std::filesystem;

// ---- Batch ------------------------------------------------------------------------------

std::vector<std::int32_t> Batch::inputs() const {
  std::vector<std::int32_t> v(static_cast<std::size_t>(batch_size) * seq_len);
  for (int b = 0; b < batch_size; ++b)
    for (int t = 0; t < seq_len; ++t) v[static_cast<std::size_t>(b) * seq_len + t] = input(b, t);
  return v;
}

std::vector<std::int32_t> Batch::targets() const {
  std::vector<std::int32_t> v(static_cast<std::size_t>(batch_size) * seq_len);
  for (int b = 0; b < batch_size; ++b)
    for (int t = 0; t < seq_len; ++t) v[static_cast<std::size_t>(b) * seq_len + t] = target(b, t);
  return v;
}

std::vector<std::int32_t> Batch::labels() const {
  std::vector<std::int32_t> v = targets();
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!mask[i]) v[i] = -1;
  }
  return v;
}

std::uint64_t Batch::counted_targets() const {
  return static_cast<std::uint64_t>(std::count(mask.begin(), mask.end(), std::uint8_t{1}));
}

namespace {

void shape_batch(Batch& out, int batch_size, int seq_len) {
  out.batch_size = batch_size;
  out.seq_len = seq_len;
  out.rows = 0;
  out.tokens.assign(static_cast<std::size_t>(batch_size) * (seq_len + 1), kPadId);
  out.mask.assign(static_cast<std::size_t>(batch_size) * seq_len, 0);
}

void check_options(const LoaderOptions& o) {
  if (o.seq_len < 1) fail("seq_len must be at least 1, got {}", o.seq_len);
  if (o.batch_size < 1) fail("batch size must be at least 1, got {}", o.batch_size);
  if (o.world < 1 || o.rank < 0 || o.rank >= o.world) {
    fail("rank {} of world size {} is invalid: need 0 <= rank < world", o.rank, o.world);
  }
}

}  // namespace

// ---- Shard discovery --------------------------------------------------------------------

std::vector<fs::path> find_shards(const fs::path& path, const std::string& split) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return split_shards(check_data_folder(path), split);
  const std::string kind = describe_path_kind(path);
  if (kind == "missing") {
    fail(
        "token data '{}' does not exist: pass a shard file or the folder written by `difftx "
        "data prepare`",
        path.string());
  }
  require_regular_file(path, "token data",
                       "pass a shard file or the folder written by `difftx data prepare`");
  return {path};
}

ShardSet::ShardSet(const std::vector<fs::path>& paths, bool verify) {
  Checksum64 h;
  for (const auto& p : paths) {
    ShardReader r(p, verify);
    if (shards_.empty()) {
      vocab_size_ = r.vocab_size();
      record_tokens_ = r.record_tokens();
      h.update_u64(vocab_size_);
      h.update_u64(record_tokens_);
    } else if (r.vocab_size() != vocab_size_) {
      fail(
          "shard '{}' has vocabulary size {}, but '{}' has {}: shards of one data set must come "
          "from one tokenizer",
          p.string(), r.vocab_size(), shards_.front().path().string(), vocab_size_);
    } else if (r.record_tokens() != record_tokens_) {
      fail("shard '{}' holds {}, but '{}' holds {}: shards of one split must have one layout",
           p.string(),
           r.record_tokens() ? fmt::format("examples of {} tokens", r.record_tokens())
                             : std::string("a token stream"),
           shards_.front().path().string(),
           record_tokens_ ? fmt::format("examples of {} tokens", record_tokens_)
                          : std::string("a token stream"));
    }
    has_label_mask_ = has_label_mask_ || r.has_label_mask();
    h.update_u64(r.size());
    h.update_u64(r.header().payload_checksum);
    total_tokens_ += r.size();
    shards_.push_back(std::move(r));
  }
  fingerprint_ = hex64(h.value());
}

namespace {

// Record data needs windows of exactly one example.
void check_record_length(const ShardSet& set, const LoaderOptions& o) {
  const std::uint32_t R = set.record_tokens();
  if (R > 0 && static_cast<std::uint64_t>(o.seq_len) + 1 != R) {
    fail(
        "'{}' holds task examples of {} tokens each, so seq_len must be {} (it is {}): set "
        "data.seq_len to {}",
        o.path.string(), R, R - 1, o.seq_len, R - 1);
  }
}

// Sets mask row `m` (T entries) from the labels of the targets, tokens [start + 1, start + 1 +
// count) of `shard`, keeping entries that are already 0.
void apply_labels(const ShardReader& shard, std::uint64_t start, std::uint32_t count,
                  std::uint8_t* m) {
  if (!shard.has_label_mask()) return;
  for (std::uint32_t t = 0; t < count; ++t) {
    if (m[t] && !shard.label(start + 1 + t)) m[t] = 0;
  }
}

}  // namespace

// ---- LoaderState ------------------------------------------------------------------------

nlohmann::json LoaderState::to_json() const {
  return {{"seed", seed},       {"epoch", epoch},           {"step", step},
          {"seq_len", seq_len}, {"batch_size", batch_size}, {"world", world},
          {"dataset", dataset}};
}

LoaderState LoaderState::from_json(const nlohmann::json& j) {
  // Read with range checks into the exact types (core/json_fields.h): a fractional or
  // out-of-range value in a training state is an error, never a truncation.
  const JsonFields f(j, "data loader state",
                     {"seed", "epoch", "step", "seq_len", "batch_size", "world", "dataset"},
                     JsonFields::Unknown::reject, JsonFields::Null::is_value,
                     "not a field of a data loader state");
  constexpr int kMax = std::numeric_limits<int>::max();
  LoaderState s;
  s.seed = f.integer<std::uint64_t>("seed");
  s.epoch = f.integer<std::uint64_t>("epoch");
  s.step = f.integer<std::uint64_t>("step");
  s.seq_len = f.integer<int>("seq_len", 1, kMax);
  s.batch_size = f.integer<int>("batch_size", 1, kMax);
  s.world = f.integer<int>("world", 1, kMax);
  s.dataset = f.string("dataset");
  return s;
}

// ---- TrainLoader ------------------------------------------------------------------------

TrainLoader::TrainLoader(const LoaderOptions& options)
    : options_(options),
      set_((check_options(options), find_shards(options.path, options.split)), options.verify) {
  check_record_length(set_, options_);
  // Every epoch must hold at least one step, whatever its offset (at most T - 1).
  const auto T = static_cast<std::uint64_t>(options_.seq_len);
  std::uint64_t worst = 0;
  for (const auto& s : set_.shards()) {
    if (set_.record_tokens() > 0) {
      worst += s.size() / set_.record_tokens();
    } else if (s.size() >= 2 * T) {
      worst += (s.size() - T) / T;
    }
  }
  const auto need = static_cast<std::uint64_t>(options_.batch_size) * options_.world;
  if (worst < need) {
    fail(
        "'{}' is too small for batches of {} x {} windows of {} tokens: it holds {} tokens "
        "({} windows in the worst epoch), need at least {} windows; use a shorter seq_len, a "
        "smaller batch or more data",
        options_.path.string(), options_.world, options_.batch_size, options_.seq_len + 1,
        set_.total_tokens(), worst, need);
  }
  layout_epoch();
}

void TrainLoader::layout_epoch() {
  const auto T = static_cast<std::uint64_t>(options_.seq_len);
  const std::uint64_t R = set_.record_tokens();
  const std::uint64_t epoch_key = mix64(options_.seed ^ mix64(epoch_ + 0x5eedULL));
  offset_ = R == 0 && T > 1 ? epoch_key % T : 0;  // examples always start at their first token
  prefix_.assign(1, 0);
  for (const auto& s : set_.shards()) {
    const std::uint64_t n = s.size();
    std::uint64_t count = 0;
    if (R > 0) {
      count = n / R;
    } else if (n >= offset_ + T + 1) {
      count = (n - 1 - offset_) / T;
    }
    prefix_.push_back(prefix_.back() + count);
  }
  perm_key_ = mix64(epoch_key ^ 0xa5a5a5a5a5a5a5a5ULL);
}

std::uint64_t TrainLoader::steps_in_epoch() const {
  return windows_in_epoch() / (static_cast<std::uint64_t>(options_.batch_size) * options_.world);
}

std::uint64_t TrainLoader::window_start(std::uint64_t global, std::size_t* shard) const {
  const auto it = std::upper_bound(prefix_.begin(), prefix_.end(), global);
  const auto s = static_cast<std::size_t>(it - prefix_.begin() - 1);
  *shard = s;
  const std::uint64_t stride = set_.record_tokens() > 0
                                   ? set_.record_tokens()
                                   : static_cast<std::uint64_t>(options_.seq_len);
  return offset_ + (global - prefix_[s]) * stride;
}

Batch TrainLoader::next_batch() {
  Batch b;
  next_batch(b);
  return b;
}

void TrainLoader::next_batch(Batch& out) {
  if (step_ >= steps_in_epoch()) {
    ++epoch_;
    step_ = 0;
    layout_epoch();
  }
  const int B = options_.batch_size, T = options_.seq_len;
  shape_batch(out, B, T);
  out.rows = B;
  std::fill(out.mask.begin(), out.mask.end(), std::uint8_t{1});
  const IndexPermutation perm(windows_in_epoch(), perm_key_);
  for (int b = 0; b < B; ++b) {
    const std::uint64_t i =
        (step_ * static_cast<std::uint64_t>(options_.world) + options_.rank) * B + b;
    std::size_t shard = 0;
    const std::uint64_t start = window_start(perm(i), &shard);
    const ShardReader& reader = set_.shards()[shard];
    reader.copy(start, static_cast<std::uint64_t>(T) + 1,
                out.tokens.data() + static_cast<std::size_t>(b) * (T + 1));
    apply_labels(reader, start, static_cast<std::uint32_t>(T),
                 out.mask.data() + static_cast<std::size_t>(b) * T);
  }
  ++step_;
}

LoaderState TrainLoader::state() const {
  LoaderState s;
  s.seed = options_.seed;
  s.epoch = epoch_;
  s.step = step_;
  s.seq_len = options_.seq_len;
  s.batch_size = options_.batch_size;
  s.world = options_.world;
  s.dataset = set_.fingerprint();
  return s;
}

void TrainLoader::restore(const LoaderState& s) {
  if (s.dataset != set_.fingerprint()) {
    fail(
        "the data loader state belongs to a different data set (fingerprint {}, '{}' has {}): "
        "resume with the shards the run started with, or start a new run",
        s.dataset, options_.path.string(), set_.fingerprint());
  }
  if (s.seq_len != options_.seq_len || s.batch_size != options_.batch_size ||
      s.world != options_.world) {
    fail(
        "the data loader state is for seq_len {}, batch size {}, world size {}, but this "
        "loader has seq_len {}, batch size {}, world size {}: resume with the same settings",
        s.seq_len, s.batch_size, s.world, options_.seq_len, options_.batch_size, options_.world);
  }
  options_.seed = s.seed;
  epoch_ = s.epoch;
  step_ = s.step;
  layout_epoch();
  if (step_ > steps_in_epoch()) {
    fail("the data loader state is at step {} of epoch {}, which has only {} steps", step_, epoch_,
         steps_in_epoch());
  }
}

// ---- EvalLoader -------------------------------------------------------------------------

EvalLoader::EvalLoader(const LoaderOptions& options)
    : options_(options),
      set_((check_options(options), find_shards(options.path, options.split)), options.verify) {
  check_record_length(set_, options_);
  const auto T = static_cast<std::uint64_t>(options_.seq_len);
  const std::uint64_t R = set_.record_tokens();
  for (std::uint32_t s = 0; s < set_.shards().size(); ++s) {
    const std::uint64_t n = set_.shards()[s].size();
    if (R > 0) {
      for (std::uint64_t k = 0; k < n / R; ++k) {
        windows_.push_back({s, k * R, static_cast<std::uint32_t>(R), 0});
      }
      continue;
    }
    if (n < 2) continue;  // no target
    const std::uint64_t targets = n - 1;
    const std::uint64_t full = targets / T;
    for (std::uint64_t k = 0; k < full; ++k) {
      windows_.push_back({s, k * T, static_cast<std::uint32_t>(T + 1), 0});
    }
    const std::uint64_t rest = targets - full * T;
    if (rest == 0) continue;
    if (full > 0) {
      // Ends at the last token; its first T - rest targets were counted already.
      windows_.push_back(
          {s, n - 1 - T, static_cast<std::uint32_t>(T + 1), static_cast<std::uint32_t>(T - rest)});
    } else {
      windows_.push_back({s, 0, static_cast<std::uint32_t>(n), 0});  // shorter than a window
    }
  }
  if (windows_.empty()) {
    fail("'{}' holds no evaluation targets (its shards have fewer than 2 tokens)",
         options_.path.string());
  }
  const auto world = static_cast<std::uint64_t>(options_.world);
  const auto B = static_cast<std::uint64_t>(options_.batch_size);
  const std::uint64_t per_rank = (windows_.size() + world - 1) / world;
  num_batches_ = (per_rank + B - 1) / B;
}

std::uint64_t EvalLoader::total_targets() const {
  std::uint64_t total = 0;
  for (const Window& w : windows_) {
    const ShardReader& shard = set_.shards()[w.shard];
    if (!shard.has_label_mask()) {
      total += w.length - 1 - w.mask_from;
      continue;
    }
    for (std::uint64_t t = w.mask_from; t + 1 < w.length; ++t) {
      if (shard.label(w.start + 1 + t)) ++total;
    }
  }
  return total;
}

bool EvalLoader::next(Batch& out) {
  if (next_batch_ >= num_batches_) return false;
  const int B = options_.batch_size, T = options_.seq_len;
  shape_batch(out, B, T);
  for (int b = 0; b < B; ++b) {
    const std::uint64_t local = next_batch_ * static_cast<std::uint64_t>(B) + b;
    const std::uint64_t j = local * static_cast<std::uint64_t>(options_.world) + options_.rank;
    if (j >= windows_.size()) continue;  // padding row: PAD tokens, mask 0
    const Window& w = windows_[j];
    std::int32_t* row = out.tokens.data() + static_cast<std::size_t>(b) * (T + 1);
    set_.shards()[w.shard].copy(w.start, w.length, row);
    std::uint8_t* m = out.mask.data() + static_cast<std::size_t>(b) * T;
    for (std::uint32_t t = w.mask_from; t + 1 < w.length; ++t) m[t] = 1;
    apply_labels(set_.shards()[w.shard], w.start, w.length - 1, m);
    out.rows = b + 1;
  }
  ++next_batch_;
  return true;
}

}  // namespace difftx::data
