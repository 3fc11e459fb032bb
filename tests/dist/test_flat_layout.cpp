// The flat layout of data parallelism: buckets follow the backward's order, are padded so every
// rank's chunk is aligned, and the shards of all ranks cover every parameter element exactly
// once; the model's gradients-ready hook reports each parameter once, with its final gradient.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/dist/flat_layout.h"
#include "difftx/model/model.h"
#include "model/model_test_util.h"

namespace difftx::dist {
namespace {

using difftx::testing::random_tokens;
using difftx::testing::tiny_config;

std::vector<std::int64_t> numels_of(const ModelConfig& c) {
  std::vector<std::int64_t> n;
  for (const auto& s : parameter_specs(c)) n.push_back(shape_numel(s.shape));
  return n;
}

TEST(FlatLayout, ShardsCoverEveryElementOnceAtEveryWorldSize) {
  const ModelConfig c = tiny_config(AttentionKind::diff_v1, true);
  const auto numels = numels_of(c);
  for (int shards : {1, 2, 3, 4}) {
    for (std::int64_t bucket : {1, 300, 100000}) {
      const FlatLayout layout(numels, gradients_ready_order(c), bucket, shards);
      ASSERT_EQ(layout.total() % shards, 0);
      std::int64_t shard_total = 0;
      for (std::size_t b = 0; b < layout.buckets().size(); ++b) {
        const FlatBucket& bk = layout.buckets()[b];
        EXPECT_EQ(bk.size % (shards * kAlign), 0) << "bucket " << b;
        EXPECT_EQ(bk.shard_offset, shard_total);
        shard_total += layout.chunk(b);
        if (b > 0) {
          EXPECT_EQ(bk.offset, layout.buckets()[b - 1].offset + layout.buckets()[b - 1].size);
        }
      }
      EXPECT_EQ(shard_total, layout.shard_size());
      // Element (param, i) -> how many shards hold it.
      std::map<std::pair<std::size_t, std::int64_t>, int> seen;
      for (int s = 0; s < shards; ++s) {
        std::int64_t last_shard_end = -1;
        for (const FlatSegment& seg : layout.segments(s)) {
          EXPECT_GE(seg.shard_offset, last_shard_end) << "segments in shard order";
          last_shard_end = seg.shard_offset + seg.numel;
          EXPECT_EQ(seg.flat_offset, layout.offset(seg.param) + seg.param_offset);
          // The segment lies inside shard s's chunk of its bucket.
          const std::size_t b = layout.bucket_of(seg.param);
          const FlatBucket& bk = layout.buckets()[b];
          EXPECT_GE(seg.flat_offset, bk.offset + s * layout.chunk(b));
          EXPECT_LE(seg.flat_offset + seg.numel, bk.offset + (s + 1) * layout.chunk(b));
          EXPECT_EQ(seg.shard_offset - bk.shard_offset,
                    seg.flat_offset - bk.offset - s * layout.chunk(b));
          for (std::int64_t i = 0; i < seg.numel; ++i) ++seen[{seg.param, seg.param_offset + i}];
        }
        EXPECT_LE(last_shard_end, layout.shard_size());
      }
      std::int64_t elements = 0;
      for (auto n : numels) elements += n;
      ASSERT_EQ(std::int64_t(seen.size()), elements) << shards << " shards, bucket " << bucket;
      for (const auto& [key, count] : seen) ASSERT_EQ(count, 1);
    }
  }
}

TEST(FlatLayout, BucketsFollowTheBackwardOrderAndNeverSplitAParameter) {
  const ModelConfig c = tiny_config(AttentionKind::diff_v2, false, RopeStyle::interleaved, false);
  const auto numels = numels_of(c);
  const auto order = gradients_ready_order(c);
  const FlatLayout layout(numels, order, 400, 2);
  std::vector<std::size_t> flat_order;
  for (const auto& g : order) flat_order.insert(flat_order.end(), g.begin(), g.end());
  std::int64_t last = -1;
  std::size_t last_bucket = 0;
  for (std::size_t p : flat_order) {
    EXPECT_GT(layout.offset(p), last) << "parameters laid out in ready order";
    last = layout.offset(p);
    EXPECT_GE(layout.bucket_of(p), last_bucket);
    last_bucket = layout.bucket_of(p);
    const FlatBucket& b = layout.buckets()[layout.bucket_of(p)];
    EXPECT_GE(layout.offset(p), b.offset);
    EXPECT_LE(layout.offset(p) + numels[p], b.offset + b.size);
  }
  EXPECT_GT(layout.buckets().size(), 2u);
  // The untied output matrix and the final norm complete first: they open the first bucket.
  const auto specs = parameter_specs(c);
  EXPECT_EQ(specs[order[0][0]].name, "norm.weight");
  EXPECT_EQ(specs[order[0][1]].name, "output.weight");
  EXPECT_EQ(specs[order.back()[0]].name, "tok_embeddings.weight");
  EXPECT_EQ(layout.bucket_of(order[0][0]), 0u);
}

TEST(FlatLayout, ViewsShareTheFlatBuffer) {
  const ModelConfig c = tiny_config(AttentionKind::softmax, true);
  const auto specs = parameter_specs(c);
  const FlatLayout layout(numels_of(c), gradients_ready_order(c), 500, 3);
  Tensor flat = Tensor::zeros({layout.total()}, DType::f32);
  ParamSet views = layout.views(flat, specs);
  for (std::size_t i = 0; i < views.size(); ++i) {
    ASSERT_EQ(views.tensor(i).shape(), specs[i].shape);
    views.tensor(i).data<float>()[0] = float(i + 1);
  }
  for (std::size_t i = 0; i < views.size(); ++i) {
    EXPECT_EQ(flat.data<float>()[layout.offset(i)], float(i + 1)) << specs[i].name;
  }
  EXPECT_THROW(layout.views(Tensor::zeros({layout.total() + 1}, DType::f32), specs), Error);
}

TEST(GradientsReadyHook, ReportsEveryParameterOnceWithItsFinalGradient) {
  for (AttentionKind kind :
       {AttentionKind::diff_v1, AttentionKind::diff_v2, AttentionKind::softmax}) {
    for (bool tied : {true, false}) {
      const ModelConfig c = tiny_config(kind, true, RopeStyle::interleaved, tied);
      auto backend = make_cpu_backend(DType::f64);
      Model model(c, *backend, ParamSet::initialised(c, 3, DType::f64, Device::cpu));
      std::vector<int> reported(model.params().size(), 0);
      std::map<std::size_t, std::vector<double>> at_report;
      std::vector<std::size_t> order;
      model.set_gradients_ready_hook([&](std::span<const std::size_t> ps) {
        for (std::size_t p : ps) {
          ++reported[p];
          order.push_back(p);
          at_report[p] = model.grads().tensor(p).to_double_vector();
        }
      });
      const Tensor in = random_tokens(2, 5, c.vocab_size, 1),
                   tg = random_tokens(2, 5, c.vocab_size, 2);
      model.zero_grads();
      model.forward_backward(in, tg);
      std::vector<std::size_t> expected;
      for (const auto& g : gradients_ready_order(c))
        expected.insert(expected.end(), g.begin(), g.end());
      EXPECT_EQ(order, expected);
      for (std::size_t p = 0; p < reported.size(); ++p) {
        ASSERT_EQ(reported[p], 1) << model.params().name(p);
        EXPECT_EQ(at_report[p], model.grads().tensor(p).to_double_vector())
            << model.params().name(p) << " changed after it was reported final";
      }
      model.set_gradients_ready_hook({});
      model.forward_backward(in, tg);  // no hook: nothing reported
      for (int r : reported) EXPECT_EQ(r, 1);
    }
  }
}

TEST(GradientsReadyHook, CallerSuppliedGradientStorageIsUsedAndChecked) {
  const ModelConfig c = tiny_config(AttentionKind::diff_v1, false);
  const auto specs = parameter_specs(c);
  auto backend = make_cpu_backend(DType::f64);
  const FlatLayout layout(numels_of(c), gradients_ready_order(c), 200, 1);
  Tensor flat = Tensor::empty({layout.total()}, DType::f64);
  for (std::int64_t i = 0; i < flat.numel(); ++i) flat.data<double>()[i] = 7.0;  // zeroed by Model
  const ParamSet init = ParamSet::initialised(c, 9, DType::f64, Device::cpu);
  ParamSet copy;
  for (std::size_t i = 0; i < init.size(); ++i) copy.add(init.name(i), init.tensor(i).clone());
  Model flat_model(c, *backend, std::move(copy), layout.views(flat, specs));
  Model plain(c, *backend, ParamSet::initialised(c, 9, DType::f64, Device::cpu));
  const Tensor in = random_tokens(2, 6, c.vocab_size, 4), tg = random_tokens(2, 6, c.vocab_size, 5);
  EXPECT_EQ(flat_model.forward_backward(in, tg), plain.forward_backward(in, tg));
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto a = plain.grads().tensor(i).to_double_vector();
    for (std::int64_t k = 0; k < layout.numel(i); ++k) {
      ASSERT_EQ(flat.data<double>()[layout.offset(i) + k], a[std::size_t(k)]) << specs[i].name;
    }
  }
  // Gradient storage of the wrong dtype is refused with the tensor's name.
  ParamSet wrong = ParamSet::zeros_like_specs(specs, DType::f32, Device::cpu);
  try {
    Model m(c, *backend, ParamSet::initialised(c, 9, DType::f64, Device::cpu), std::move(wrong));
    ADD_FAILURE() << "f32 gradients accepted by an f64 backend";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gradient storage: 'tok_embeddings.weight' is f32"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace difftx::dist
