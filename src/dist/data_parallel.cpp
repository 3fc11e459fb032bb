// One rank's data-parallel model: flat buffers, model views, reducer and ZeRO-1 AdamW
// (data_parallel.h).
#include "difftx/dist/data_parallel.h"

#include <cmath>

#include "difftx/core/error.h"

namespace difftx::dist {

DataParallel::DataParallel(const ModelConfig& config, Backend& backend, const ParamSet& params,
                           Communicator& comm, const OptimSettings& optim,
                           const DataParallelOptions& options)
    : comm_(comm) {
  DIFFTX_CHECK(comm.device() == backend.device(),
               "{}: a {} communicator cannot reduce {} tensors of the {} backend", comm.who(),
               comm.name(), device_name(backend.device()), backend.name());
  DIFFTX_CHECK(options.bucket_mb > 0, "--bucket-mb must be positive, got {}", options.bucket_mb);
  const auto specs = parameter_specs(config);
  std::vector<std::int64_t> numels;
  for (const auto& s : specs) numels.push_back(shape_numel(s.shape));
  const double elem = double(dtype_size(backend.param_dtype()));
  const auto bucket_elements =
      std::max<std::int64_t>(1, std::int64_t(options.bucket_mb * 1e6 / elem));
  layout_ = std::make_unique<FlatLayout>(numels, gradients_ready_order(config), bucket_elements,
                                         options.zero ? comm.world() : 1);
  const DType dtype = backend.param_dtype();
  const Device device = backend.device();
  flat_params_ = Tensor::zeros({layout_->total()}, dtype, device);  // (total)
  flat_grads_ = Tensor::zeros({layout_->total()}, dtype, device);   // (total)
  if (layout_->shards() > 1) {
    shard_grads_ = Tensor::zeros({layout_->shard_size()}, dtype, device);  // (shard)
  }
  ParamSet param_views = layout_->views(flat_params_, specs);
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const Tensor& src = params.at(specs[i].name);
    DIFFTX_CHECK(src.shape() == specs[i].shape, "parameter '{}' has shape {}, the config needs {}",
                 specs[i].name, shape_string(src.shape()), shape_string(specs[i].shape));
    Tensor typed = src.dtype() == dtype          ? src
                   : src.device() == Device::cpu ? src.to_dtype(dtype)
                                                 : src.to(Device::cpu).to_dtype(dtype);
    param_views.tensor(i).copy_from(typed);
  }
  // Every rank must start from the same weights (same seed, same checkpoint).
  const double sumsq = backend.sum_of_squares(flat_params_);
  const auto extremes = comm.all_reduce_host({sumsq, -sumsq}, ReduceOp::max);
  if (extremes[0] != -extremes[1]) {
    fail(
        "{}: the ranks start from different parameters (sum of squares {} here, between {} and "
        "{} over the ranks): give every rank the same train.seed and checkpoint",
        comm.who(), sumsq, -extremes[1], extremes[0]);
  }
  model_ = std::make_unique<Model>(config, backend, std::move(param_views),
                                   layout_->views(flat_grads_, specs));
  reducer_ = std::make_unique<GradientReducer>(*model_, comm, *layout_, flat_grads_, shard_grads_);
  optimizer_ = std::make_unique<ShardedAdamW>(*model_, optim, comm, *layout_, flat_params_,
                                              reducer_->reduced());
}

DataParallel::~DataParallel() = default;

void DataParallel::before_micro_batch(bool last) {
  if (last) reducer_->arm();
}

double DataParallel::finish_gradients(double local_loss) {
  reducer_->finish();
  return comm_.all_reduce_host({local_loss}, ReduceOp::sum)[0] / double(comm_.world());
}

}  // namespace difftx::dist
