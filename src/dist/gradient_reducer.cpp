// Bucketed gradient reduction driven by the model's gradients-ready hook (gradient_reducer.h).
#include "difftx/dist/gradient_reducer.h"

#include "difftx/core/error.h"

namespace difftx::dist {

GradientReducer::GradientReducer(Model& model, Communicator& comm, const FlatLayout& layout,
                                 Tensor flat_grads, Tensor shard_grads)
    : model_(model),
      comm_(comm),
      layout_(layout),
      flat_grads_(std::move(flat_grads)),
      shard_grads_(std::move(shard_grads)),
      shards_(layout.shards()) {
  DIFFTX_CHECK(shards_ == 1 || shards_ == comm.world(),
               "gradient reducer: a layout of {} shards for {} ranks", shards_, comm.world());
  DIFFTX_CHECK(flat_grads_.numel() == layout.total(),
               "gradient reducer: flat gradients {} for a layout of {} elements",
               flat_grads_.describe(), layout.total());
  DIFFTX_CHECK(shards_ == 1 || shard_grads_.numel() == layout.shard_size(),
               "gradient reducer: shard gradients {} for shards of {} elements",
               shard_grads_.defined() ? shard_grads_.describe() : "undefined", layout.shard_size());
  model_.set_gradients_ready_hook([this](std::span<const std::size_t> p) { on_ready(p); });
}

GradientReducer::~GradientReducer() {
  model_.set_gradients_ready_hook({});
}

void GradientReducer::arm() {
  armed_ = true;
  next_ = 0;
  pending_.assign(layout_.buckets().size(), 0);
  for (std::size_t b = 0; b < pending_.size(); ++b)
    pending_[b] = layout_.buckets()[b].params.size();
}

void GradientReducer::on_ready(std::span<const std::size_t> params) {
  if (!armed_) return;  // an earlier micro-batch: gradients keep accumulating locally
  for (std::size_t p : params) {
    const std::size_t b = layout_.bucket_of(p);
    DIFFTX_CHECK(pending_[b] > 0, "gradient reducer: parameter {} reported twice", p);
    --pending_[b];
  }
  while (next_ < pending_.size() && pending_[next_] == 0) launch(next_++);
  comm_.progress();
}

void GradientReducer::launch(std::size_t b) {
  const FlatBucket& bucket = layout_.buckets()[b];
  Tensor grads = flat_grads_.rows(bucket.offset, bucket.offset + bucket.size);  // (size)
  if (shards_ > 1) {
    const std::int64_t chunk = layout_.chunk(b);
    Tensor mine = shard_grads_.rows(bucket.shard_offset, bucket.shard_offset + chunk);  // (chunk)
    comm_.reduce_scatter(grads, mine);
  } else {
    comm_.all_reduce(grads, ReduceOp::sum);
  }
}

void GradientReducer::finish() {
  DIFFTX_CHECK(armed_, "gradient reducer: finish() without arm()");
  // Every bucket is launched by the hook during the backward; the rest (a model that reported
  // nothing) goes now, in the same order on every rank.
  while (next_ < pending_.size()) launch(next_++);
  armed_ = false;
  comm_.wait();
}

}  // namespace difftx::dist
