#include "worker/engine/guidance.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/engine/fake_denoiser.h"

namespace magi {
namespace {

GuidanceConfig Cfg(int number) {
  GuidanceConfig o;
  o.cfg_number = number;
  o.cfg_t_range = {0.0, 0.0217, 0.1, 0.3, 0.999};
  o.prev_chunk_scales = {1.5, 1.5, 1.5, 1.0, 1.0};
  o.text_scales = {7.5, 7.5, 7.5, 0.0, 0.0};
  o.chunk_width = 2;
  o.tokens_per_chunk = 2 * 2 * 3;
  return o;
}

GuidanceStep Step(int n, bool extra, bool nearly) {
  GuidanceStep s;
  s.x = at::randn({1, 16, 2 * n, 4, 6});
  for (int i = 0; i < n; ++i) {
    s.t.push_back(extra && i == 0 ? 0.9999f : 0.05f * (n - i));
    s.text_rows.push_back(at::full({16, 64}, 1.0f + i));
    s.text_masks.push_back(at::ones({16}));
    s.null_rows.push_back(at::zeros({16, 64}));
    s.null_masks.push_back(at::ones({16}));
    s.kv_range.push_back({0, (i + 1) * 12});
  }
  s.fwd_extra_1st_chunk = extra;
  s.distill_nearly_clean_chunk = nearly;
  s.num_steps = 8;
  return s;
}

TEST(CfgBucket, PiecewiseWithTolerance) {
  const std::vector<double> r = {0.0, 0.0217, 0.1, 0.3, 0.999};
  EXPECT_EQ(*CfgBucket(0.0f, r), 0);
  EXPECT_EQ(*CfgBucket(0.021739f, r), 1);
  EXPECT_EQ(*CfgBucket(0.1f, r), 2);  // fp32 0.1 sits on the breakpoint; the 1e-7 tolerance puts it above
  EXPECT_EQ(*CfgBucket(0.3f, r), 3);
  EXPECT_EQ(*CfgBucket(0.2999f, r), 2);
  EXPECT_EQ(*CfgBucket(0.9999f, r), 4);
  EXPECT_FALSE(CfgBucket(-0.5f, r).ok());
}

TEST(CombineCfg3, PrescribedOrderAndPureContextAtLateSteps) {
  at::Tensor b1 = at::randn({1, 16, 2, 4, 6}) * 300, b2 = at::randn({1, 16, 2, 4, 6}) * 300,
             b3 = at::randn({1, 16, 2, 4, 6}) * 300;
  // Scales (1, 0) give exactly the context-only pass.
  EXPECT_TRUE(at::equal(CombineCfg3(b3, b2, b1, 1.0f, 0.0f), b2));
  at::Tensor v = CombineCfg3(b3, b2, b1, 1.5f, 7.5f);
  at::Tensor expected = (b3 * -0.5f + b2 * -6.0f) + b1 * 7.5f;
  EXPECT_TRUE(at::equal(v, expected));
}

TEST(BlendNearlyClean, SevenTenthsThreeTenths) {
  at::Tensor a = at::randn({1, 16, 2, 4, 6}), b = at::randn({1, 16, 2, 4, 6});
  at::Tensor v = BlendNearlyClean(a, b, 0.7);
  EXPECT_TRUE(at::equal(v, a * 0.7f + b * 0.3f));
}

TEST(GuidedVelocity, ThreePassesWithTheReferenceShapes) {
  FakeDenoiser model(1, 2, 4);
  model.call_offsets = {100.f, 200.f, 300.f};  // B1, B2, B3 differ, so each coefficient matters
  GuidanceStep s = Step(3, /*extra=*/true, /*nearly=*/false);
  auto v = GuidedVelocity(model, nullptr, Cfg(3), s);
  // slice_point 0 with an extra chunk needs a cache in the real model; the fake has none to read.
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(model.calls.size(), 3u);
  EXPECT_FALSE(model.calls[0].caption_dropout_mask[0].item<bool>());
  EXPECT_FALSE(model.calls[0].update_kv_cache);
  EXPECT_TRUE(model.calls[1].caption_dropout_mask[0].item<bool>());
  EXPECT_TRUE(model.calls[1].update_kv_cache);
  // B1 text rows: the extra chunk takes the row we gave (null), the others their captions.
  EXPECT_TRUE(at::equal(model.calls[0].y[1][0], s.text_rows[1]));
  EXPECT_TRUE(at::equal(model.calls[1].y[1][0], s.null_rows[1]));
  // B3: the two noisy chunks as a batch of single chunks, no cache, self-only ranges.
  const DitForwardArgs& b3 = model.calls[2];
  EXPECT_EQ(b3.x.sizes(), (at::IntArrayRef{2, 16, 2, 4, 6}));
  EXPECT_EQ(b3.kv_cache, nullptr);
  EXPECT_EQ(b3.denoising_range_num, 1);
  EXPECT_EQ(b3.kv_range[1][0].item<int>(), 12);
  EXPECT_TRUE(at::equal(b3.x[1], s.x.narrow(2, 4, 2)[0]));
  // Extra slot returns its input latent.
  EXPECT_TRUE(at::equal(v->narrow(2, 0, 2), s.x.narrow(2, 0, 2)));
  // Chunks 1 (t = 0.1, bucket 2) and 2 (t = 0.05, bucket 1), both prev 1.5 / text 7.5:
  // (1 − 1.5)·B3 + (1.5 − 7.5)·B2 + 7.5·B1 with Bk = t − x + offset_k
  // = (t − x) − 0.5·300 − 6·200 + 7.5·100 = (t − x) − 600. Swapping any two coefficients, or
  // any set summing to 1 other than these, gives another constant.
  for (int j = 1; j <= 2; ++j) {
    at::Tensor u = s.t[j] - s.x.narrow(2, 2 * j, 2) - 600.f;
    EXPECT_TRUE(at::allclose(v->narrow(2, 2 * j, 2), u, 1e-4, 1e-3)) << "chunk " << j;
  }
}

TEST(GuidedVelocity, NearlyCleanAppendsAndBlends) {
  FakeDenoiser model(1, 2, 4);
  GuidanceStep s = Step(3, /*extra=*/true, /*nearly=*/true);
  auto v = GuidedVelocity(model, nullptr, Cfg(1), s);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(model.calls.size(), 1u);
  const DitForwardArgs& a = model.calls[0];
  EXPECT_EQ(a.denoising_range_num, 4);
  EXPECT_EQ(a.x.size(2), 8);
  EXPECT_TRUE(at::equal(a.x.narrow(2, 6, 2), s.x.narrow(2, 2, 2)));  // copy of the first noisy chunk
  EXPECT_EQ(a.kv_range[3][0].item<int>(), 36);
  EXPECT_EQ(a.kv_range[3][1].item<int>(), 48);
  EXPECT_EQ(a.t[0][3].item<float>(), s.t[1]);
  EXPECT_TRUE(at::equal(a.y[3][0], s.text_rows[1]));
  EXPECT_EQ(v->size(2), 6);
}

TEST(GuidedVelocity, RejectsCfgTwo) {
  FakeDenoiser model(1, 2, 4);
  auto v = GuidedVelocity(model, nullptr, Cfg(2), Step(1, false, false));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(v.status().message().find("cfg_number"), std::string::npos);
}

TEST(GuidedVelocity, CancelledBeforeTheNextPass) {
  FakeDenoiser model(1, 2, 4);
  int polls = 0;
  auto v = GuidedVelocity(model, nullptr, Cfg(3), Step(2, false, false), nullptr, [&] { return ++polls > 1; });
  EXPECT_EQ(v.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(model.calls.size(), 1u);
}

}  // namespace
}  // namespace magi
