// ZeRO-1 AdamW over a rank's shard of the flat buffers (sharded_adamw.h).
#include "difftx/dist/sharded_adamw.h"

#include <algorithm>
#include <cmath>

#include "difftx/core/error.h"

namespace difftx::dist {

ShardedAdamW::ShardedAdamW(Model& model, const OptimSettings& settings, Communicator& comm,
                           const FlatLayout& layout, Tensor flat_params, Tensor reduced)
    : model_(model),
      settings_(settings),
      comm_(comm),
      layout_(layout),
      flat_params_(std::move(flat_params)),
      reduced_(std::move(reduced)) {
  DIFFTX_CHECK(layout.shards() == 1 || layout.shards() == comm.world(),
               "sharded AdamW: a layout of {} shards for {} ranks", layout.shards(), comm.world());
  DIFFTX_CHECK(flat_params_.numel() == layout.total() && reduced_.numel() == layout.shard_size(),
               "sharded AdamW: buffers {} and {} for a layout of {} (shard {}) elements",
               flat_params_.describe(), reduced_.describe(), layout.total(), layout.shard_size());
  shard_ = layout.shards() == 1 ? 0 : comm.rank();
  segments_ = layout.segments(shard_);
  Backend& b = model.backend();
  m_ = Tensor::zeros({layout.shard_size()}, b.param_dtype(), b.device());  // (shard)
  v_ = Tensor::zeros({layout.shard_size()}, b.param_dtype(), b.device());  // (shard)
  for (const auto& s : parameter_specs(model.config())) {
    decay_.push_back(s.weight_decay && !(s.group == "embedding" && !settings.decay_embeddings));
  }
}

double ShardedAdamW::step(double lr) {
  Backend& b = model_.backend();
  // Every rank sums a disjoint part of the reduced gradient: its own shard, or (one shard,
  // replicated) every world-th segment; the all-reduced total is then one number everywhere.
  const bool replicated = layout_.shards() == 1;
  double local = 0;
  for (std::size_t i = 0; i < segments_.size(); ++i) {
    if (replicated && int(i % std::size_t(comm_.world())) != comm_.rank()) continue;
    const FlatSegment& s = segments_[i];
    local += b.sum_of_squares(reduced_.rows(s.shard_offset, s.shard_offset + s.numel));
  }
  const double norm = std::sqrt(comm_.all_reduce_host({local}, ReduceOp::sum)[0]);
  if (!std::isfinite(norm)) return norm;  // the caller decides (NanPolicy); nothing changed
  if (settings_.grad_clip > 0 && norm > settings_.grad_clip) {
    const double factor = settings_.grad_clip / (norm + 1e-6);
    for (const FlatSegment& s : segments_) {
      Tensor g = reduced_.rows(s.shard_offset, s.shard_offset + s.numel);
      b.scale_inplace(g, factor);
    }
  }
  ++steps_;
  for (const FlatSegment& s : segments_) {
    Tensor p = flat_params_.rows(s.flat_offset, s.flat_offset + s.numel);
    Tensor g = reduced_.rows(s.shard_offset, s.shard_offset + s.numel);
    Tensor m = m_.rows(s.shard_offset, s.shard_offset + s.numel);
    Tensor v = v_.rows(s.shard_offset, s.shard_offset + s.numel);
    b.adamw_step(p, g, m, v, lr, settings_.beta1, settings_.beta2, settings_.eps,
                 decay_[s.param] ? settings_.weight_decay : 0.0, steps_);
  }
  if (!replicated) {
    for (const FlatBucket& bucket : layout_.buckets()) {
      Tensor whole = flat_params_.rows(bucket.offset, bucket.offset + bucket.size);  // (size)
      comm_.all_gather(whole);
    }
    comm_.wait();
  }
  model_.refresh_compute_weights();
  return norm;
}

void ShardedAdamW::gather_moments(int root, ParamSet& m, ParamSet& v) {
  const auto specs = parameter_specs(model_.config());
  const bool mine = comm_.rank() == root;
  const DType dtype = m_.dtype();
  m = mine ? ParamSet::zeros_like_specs(specs, dtype, Device::cpu) : ParamSet();
  v = mine ? ParamSet::zeros_like_specs(specs, dtype, Device::cpu) : ParamSet();
  std::int64_t largest = 0;
  for (const FlatBucket& bucket : layout_.buckets()) largest = std::max(largest, bucket.size);
  Tensor scratch;
  if (layout_.shards() > 1) scratch = Tensor::empty({largest}, dtype, m_.device());  // (largest)
  for (auto [shard, whole] : {std::pair{&m_, &m}, std::pair{&v_, &v}}) {
    Tensor flat_host;  // (total) on the root when replicated
    if (layout_.shards() == 1 && mine) flat_host = shard->to(Device::cpu);
    for (std::size_t b = 0; b < layout_.buckets().size(); ++b) {
      const FlatBucket& bucket = layout_.buckets()[b];
      Tensor host;  // (size): the whole bucket, on the root
      if (layout_.shards() > 1) {
        const std::int64_t chunk = layout_.chunk(b);
        Tensor buf = scratch.rows(0, bucket.size);  // (size)
        buf.rows(comm_.rank() * chunk, (comm_.rank() + 1) * chunk)
            .copy_from(shard->rows(bucket.shard_offset, bucket.shard_offset + chunk));
        comm_.all_gather(buf);
        comm_.wait();
        if (mine) host = buf.to(Device::cpu);
      } else if (mine) {
        host = flat_host.rows(bucket.offset, bucket.offset + bucket.size);
      }
      if (!mine) continue;
      for (std::size_t p : bucket.params) {
        const std::int64_t at = layout_.offset(p) - bucket.offset;
        Tensor& dst = whole->tensor(p);
        dst.copy_from(host.rows(at, at + layout_.numel(p)).reshape(dst.shape()));
      }
    }
  }
}

void ShardedAdamW::load_moments(const ParamSet& m, const ParamSet& v) {
  const auto specs = parameter_specs(model_.config());
  for (auto [whole, shard] : {std::pair{&m, &m_}, std::pair{&v, &v_}}) {
    DIFFTX_CHECK(whole->size() == specs.size(), "optimizer state holds {} tensors, the model {}",
                 whole->size(), specs.size());
    for (const FlatSegment& s : segments_) {
      const Tensor& src = whole->at(specs[s.param].name);
      DIFFTX_CHECK(src.shape() == specs[s.param].shape,
                   "optimizer state '{}' has shape {}, the model needs {}", specs[s.param].name,
                   shape_string(src.shape()), shape_string(specs[s.param].shape));
      Tensor piece = src.reshape({src.numel()}).rows(s.param_offset, s.param_offset + s.numel);
      if (piece.dtype() != shard->dtype()) {
        piece = (piece.device() == Device::cpu ? piece : piece.to(Device::cpu))
                    .to_dtype(shard->dtype());
      }
      shard->rows(s.shard_offset, s.shard_offset + s.numel).copy_from(piece);
    }
  }
}

}  // namespace difftx::dist
