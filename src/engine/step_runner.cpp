// The engine's step execution (see step_runner.h): packing a plan into one upload, the model's
// paged forward, device sampling, one download, all queued; two steps in flight at most; CUDA
// graphs per decode batch bucket.
#include "step_runner.h"

#include <algorithm>
#include <bit>

#include "difftx/core/error.h"

namespace difftx::engine {
namespace {

using i32 = std::int32_t;

// Writes a sampling row's parameters (paged_attention.h's word layout).
void pack_params(i32* w, const ScheduledChunk* chunk) {
  std::fill_n(w, kSampleParamWords, 0);
  if (!chunk) return;  // padding row: greedy, nothing wanted
  const Sequence* seq = chunk->seq;
  const SamplingConfig& s = seq->request.sampling;
  w[kSampleTemperature] = std::bit_cast<i32>(static_cast<float>(s.temperature));
  w[kSampleTopK] = s.top_k;
  w[kSampleTopP] = std::bit_cast<i32>(static_cast<float>(s.top_p));
  w[kSampleSeedLo] = static_cast<i32>(static_cast<std::uint32_t>(s.seed));
  w[kSampleSeedHi] = static_cast<i32>(static_cast<std::uint32_t>(s.seed >> 32));
  w[kSampleCounter] = chunk->counter;
  w[kSampleTopN] = seq->request.top_logprobs;
}

i32 slot_of(const Sequence* seq, int position, int block_size) {
  return seq->blocks[static_cast<std::size_t>(position / block_size)] * block_size +
         position % block_size;
}

}  // namespace

int StepRunner::blocks_per_sequence(int max_seq_len, int block_size) {
  return (max_seq_len + block_size - 1) / block_size;
}

StepRunner::StepRunner(Model& model, const EngineOptions& options)
    : model_(model), backend_(model.backend()), options_(options) {
  const ModelConfig& c = model.config();
  max_blocks_ = blocks_per_sequence(c.max_seq_len, options.block_size);
  PagedForwardLimits lim;
  lim.max_tokens = options.max_step_tokens;
  lim.max_decode = options.max_batch;
  lim.max_blocks = max_blocks_;
  lim.max_context = c.max_seq_len;
  lim.max_prefill = std::min(options.prefill_chunk, options.max_step_tokens);
  lim.max_logits = options.max_batch;
  forward_ = std::make_unique<PagedForward>(model, lim, options.block_size);
  const Device dev = backend_.device();
  const Layout big =
      layout(options.max_step_tokens, options.max_batch, options.max_batch, options.max_batch);
  inputs_ = Tensor::empty({big.total}, DType::i32, dev);
  logits_ = Tensor::empty({options.max_batch, c.vocab_size}, backend_.param_dtype(), dev);
  results_ = Tensor::empty({results_words(options.max_batch, kMaxTopLogprobs)}, DType::i32, dev);
  for (Slot& slot : slots_) {
    slot.staging = Tensor::empty({std::max<std::int64_t>(big.total, 1024)}, DType::i32);
    // at least a page (pin_host's condition); the downloads use its first words
    slot.results = Tensor::empty({std::max<std::int64_t>(results_.numel(), 1024)}, DType::i32);
    try {
      slot.staging_pin = backend_.pin_host(slot.staging);
      slot.results_pin = backend_.pin_host(slot.results);
    } catch (const Error&) {
      // Page-locking refused (limits of the host): copies then wait for the device, which is
      // correct, only without the overlap.
      slot.staging_pin.reset();
      slot.results_pin.reset();
    }
  }
  const std::int64_t ws = backend_.sample_workspace_bytes(options.max_batch, c.vocab_size);
  if (ws > 0) sample_workspace_ = Tensor::empty({(ws + 7) / 8}, DType::f64, dev);
}

StepRunner::~StepRunner() {
  try {
    drop_queued();  // the device may still write the buffers freed below
  } catch (...) {
  }
}

void StepRunner::allocate_kv(std::int64_t num_blocks) {
  kv_ = PagedKvCache::allocate(model_, options_.block_size, num_blocks);
}

std::int64_t StepRunner::buffer_bytes() const {
  std::int64_t bytes = forward_->buffer_bytes() + static_cast<std::int64_t>(logits_.nbytes()) +
                       static_cast<std::int64_t>(results_.nbytes());
  if (sample_workspace_.defined()) bytes += static_cast<std::int64_t>(sample_workspace_.nbytes());
  if (backend_.device() != Device::cpu) bytes += static_cast<std::int64_t>(inputs_.nbytes());
  return bytes;
}

int StepRunner::bucket(int rows) const {
  int b = 1;
  while (b < rows) b *= 2;
  return std::min(b, options_.max_batch);
}

StepRunner::Layout StepRunner::layout(int n, int d, int r, int m) const {
  Layout l;
  l.ids = 0;
  l.positions = n;
  l.slots = 2 * std::int64_t(n);
  l.context_lens = 3 * std::int64_t(n);
  l.tables = l.context_lens + d;
  l.logit_rows = l.tables + std::int64_t(r) * max_blocks_;
  l.params = l.logit_rows + m;
  l.total = l.params + std::int64_t(m) * kSampleParamWords;
  return l;
}

PagedBatch StepRunner::batch_views(const Layout& l, int n, int d, int r, int m,
                                   bool all_rows) const {
  auto view = [&](std::int64_t offset, std::int64_t count) {
    return inputs_.rows(offset, offset + count);
  };
  PagedBatch b;
  b.num_tokens = n;
  b.num_decode = d;
  b.ids = view(l.ids, n);
  b.positions = view(l.positions, n);
  b.slots = view(l.slots, n);
  b.context_lens = view(l.context_lens, d);
  b.block_tables = view(l.tables, std::int64_t(r) * max_blocks_).reshape({r, max_blocks_});
  if (!all_rows) b.logit_rows = view(l.logit_rows, m);
  return b;
}

void StepRunner::launch(const PagedBatch& batch, const Layout& l, int m, int top_n) {
  Tensor logits = logits_.rows(0, m);
  forward_->run(batch, kv_, logits);
  if (m == 0) return;  // only prefill chunks that sample nothing
  const Tensor params = inputs_.rows(l.params, l.params + std::int64_t(m) * kSampleParamWords)
                            .reshape({m, kSampleParamWords});
  Tensor tokens = results_.rows(0, m);
  Tensor logprobs = results_.rows(m, 2 * std::int64_t(m)).view_as(DType::f32);
  Tensor top_ids, top_logprobs;
  if (top_n > 0) {
    const std::int64_t top = std::int64_t(m) * top_n;
    top_ids = results_.rows(2 * std::int64_t(m), 2 * std::int64_t(m) + top).reshape({m, top_n});
    top_logprobs = results_.rows(2 * std::int64_t(m) + top, 2 * std::int64_t(m) + 2 * top)
                       .view_as(DType::f32)
                       .reshape({m, top_n});
  }
  backend_.sample_tokens(logits, params, top_n, tokens, logprobs, top_ids, top_logprobs,
                         sample_workspace_);
}

void StepRunner::drop_queued() {
  queued_ = 0;
  for (Slot& slot : slots_) slot.done.reset();
  // Everything queued, a half-queued step included, before the buffers are refilled.
  backend_.mark_queue()->wait();
}

void StepRunner::submit(const StepPlan& plan) {
  DIFFTX_CHECK(kv_.num_blocks > 0, "engine: the KV pools are not allocated");
  DIFFTX_CHECK(queued_ < 2, "engine: two steps are queued already; collect one first");
  const int d = static_cast<int>(plan.decode.size());
  const int p = static_cast<int>(plan.prefill.size());
  const int sampled = plan.sampled();
  int top_n = 0;
  for (const auto& c : plan.decode) top_n = std::max(top_n, c.seq->request.top_logprobs);
  for (const auto& c : plan.prefill) {
    if (c.samples) top_n = std::max(top_n, c.seq->request.top_logprobs);
  }
  if (top_n > 0) top_n = kMaxTopLogprobs;  // one fixed width, so graphs are reused
  const bool graph = plan.decode_only() && options_.cuda_graphs && backend_.supports_capture();
  // Decode-only graph steps are padded to their bucket: rows = decode rows = sampled rows.
  const int n = graph ? bucket(d) : plan.tokens();
  const int dd = graph ? n : d;
  const int r = graph ? n : d + p;
  const int m = graph ? n : sampled;
  const Layout l = layout(n, dd, r, m);

  Slot& slot = slots_[static_cast<std::size_t>(next_slot_)];
  i32* w = slot.staging.data<i32>();
  std::vector<std::pair<int, int>> fed;  // (row, sampling row of the previous step)
  const int bs = options_.block_size;
  auto put_table = [&](int row, const Sequence* seq) {
    std::copy(seq->blocks.begin(), seq->blocks.end(),
              w + l.tables + std::int64_t(row) * max_blocks_);
  };
  int row = 0;
  for (int i = 0; i < d; ++i, ++row) {
    const ScheduledChunk& c = plan.decode[static_cast<std::size_t>(i)];
    if (c.fed_from >= 0) {
      DIFFTX_CHECK(c.fed_from < last_sampled_,
                   "engine: a decode row is fed from row {} of a step with {} sampled rows",
                   c.fed_from, last_sampled_);
      w[l.ids + row] = 0;  // overwritten on the device
      fed.emplace_back(row, c.fed_from);
    } else {
      w[l.ids + row] = c.seq->tokens[static_cast<std::size_t>(c.begin)];
    }
    w[l.positions + row] = c.begin;
    w[l.slots + row] = slot_of(c.seq, c.begin, bs);
    w[l.context_lens + i] = c.begin + 1;
    put_table(i, c.seq);
    w[l.logit_rows + i] = row;
    pack_params(w + l.params + std::int64_t(i) * kSampleParamWords, &c);
  }
  for (; row < dd; ++row) {  // graph padding: nothing written, nothing attended, greedy
    w[l.ids + row] = 0;
    w[l.positions + row] = 0;
    w[l.slots + row] = -1;
    w[l.context_lens + row] = 0;
    w[l.logit_rows + row] = row;
    pack_params(w + l.params + std::int64_t(row) * kSampleParamWords, nullptr);
  }
  PagedBatch batch = batch_views(l, n, dd, r, m, plan.decode_only());
  int k = d;
  for (int j = 0; j < p; ++j) {
    const ScheduledChunk& c = plan.prefill[static_cast<std::size_t>(j)];
    put_table(d + j, c.seq);
    batch.prefills.push_back({row, c.length, c.begin, d + j});
    for (int t = 0; t < c.length; ++t, ++row) {
      const int pos = c.begin + t;
      w[l.ids + row] = c.seq->tokens[static_cast<std::size_t>(pos)];
      w[l.positions + row] = pos;
      w[l.slots + row] = slot_of(c.seq, pos, bs);
    }
    if (c.samples) {
      w[l.logit_rows + k] = row - 1;
      pack_params(w + l.params + std::int64_t(k) * kSampleParamWords, &c);
      ++k;
    }
  }
  // The upload, its fed rows taking the previous step's sampled tokens, still on the device
  // (results_ holds them until this step samples): one patch per run of consecutive rows.
  std::vector<Backend::CopyPatch> patches;
  for (std::size_t i = 0; i < fed.size();) {
    std::size_t j = i + 1;
    while (j < fed.size() && fed[j].first == fed[j - 1].first + 1 &&
           fed[j].second == fed[j - 1].second + 1) {
      ++j;
    }
    patches.push_back({l.ids + fed[i].first, fed[i].second, static_cast<std::int64_t>(j - i)});
    i = j;
  }
  backend_.copy_async_patched(inputs_.rows(0, l.total), slot.staging.rows(0, l.total), patches,
                              results_);
  if (inputs_.device() == Device::cpu) {
    // The CPU runs the step now: a -1 (invalid logits) of the previous step would stop it in
    // the embedding before that step's completion names the problem. Its row is discarded
    // anyway. (The CUDA embedding turns an invalid id into a NaN row.)
    for (const Backend::CopyPatch& p : patches) {
      i32* ids = inputs_.data<i32>() + p.at;
      for (std::int64_t r = 0; r < p.count; ++r) ids[r] = std::max(ids[r], 0);
    }
  }

  if (graph) {
    const auto key = std::make_pair(n, top_n);
    auto found = graphs_.find(key);
    if (found != graphs_.end()) {
      found->second->replay();
    } else {
      launch(batch, l, m, top_n);  // runs this step and warms every op up for the capture
      backend_.begin_capture();
      try {
        launch(batch, l, m, top_n);
      } catch (...) {
        backend_.end_capture();
        throw;
      }
      graphs_.emplace(key, backend_.end_capture());
    }
  } else {
    launch(batch, l, m, top_n);
  }

  const std::int64_t words = results_words(m, top_n);
  if (words > 0) backend_.copy_async(slot.results.rows(0, words), results_.rows(0, words));
  slot.done = backend_.mark_queue();
  slot.sampled = sampled;
  slot.m = m;
  slot.top_n = top_n;
  last_sampled_ = sampled;
  next_slot_ ^= 1;
  ++queued_;
}

std::vector<SampledToken> StepRunner::collect() {
  DIFFTX_CHECK(queued_ > 0, "engine: no step is queued");
  Slot& slot = slots_[static_cast<std::size_t>(next_slot_ ^ (queued_ == 2 ? 0 : 1))];
  slot.done->wait();
  slot.done.reset();
  --queued_;
  const int m = slot.m, top_n = slot.top_n, sampled = slot.sampled;
  const i32* out = slot.results.data<i32>();
  std::vector<SampledToken> results(static_cast<std::size_t>(sampled));
  for (int i = 0; i < sampled; ++i) {
    SampledToken& s = results[static_cast<std::size_t>(i)];
    s.token = out[i];
    s.logprob = std::bit_cast<float>(out[m + i]);
    for (int t = 0; t < top_n; ++t) {
      const i32 id = out[2 * std::int64_t(m) + std::int64_t(i) * top_n + t];
      if (id < 0) break;
      s.top.push_back(
          {id,
           std::bit_cast<float>(
               out[2 * std::int64_t(m) + std::int64_t(m) * top_n + std::int64_t(i) * top_n + t])});
    }
  }
  return results;
}

}  // namespace difftx::engine
