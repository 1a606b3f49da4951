#include "worker/vae/vae_tiling.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

namespace magi {
namespace {

// The reference TileProcessor written out plainly: every tile result kept, then blended
// (in place or on a clone) and concatenated. RunTiled must equal it.
at::Tensor ReferenceTiled(const at::Tensor& x, const VaeTilePlan& p, bool clone, const VaeTileFn& fn) {
  std::vector<at::Tensor> frames;
  for (const VaeTile& t : p.tiles) {
    frames.push_back(
        *fn(x.slice(2, t.t0, t.t0 + t.t_len).slice(3, t.h0, t.h0 + t.h_len).slice(4, t.w0, t.w0 + t.w_len)));
  }
  auto blend = clone ? BlendFusedInPlace : BlendEagerInPlace;
  auto idx = [&](int64_t f, int64_t i, int64_t j) { return (f * p.num_h + i) * p.num_w + j; };
  std::vector<at::Tensor> layers;
  for (int64_t f = 0; f < p.num_t; ++f) {
    std::vector<at::Tensor> rows;
    for (int64_t i = 0; i < p.num_h; ++i) {
      std::vector<at::Tensor> row;
      for (int64_t j = 0; j < p.num_w; ++j) {
        at::Tensor tile = clone ? frames[idx(f, i, j)].clone() : frames[idx(f, i, j)];
        if (f > 0) blend(frames[idx(f - 1, i, j)], tile, 2, p.blend_t);
        if (i > 0) blend(frames[idx(f, i - 1, j)], tile, 3, p.blend_h);
        if (j > 0) blend(frames[idx(f, i, j - 1)], tile, 4, p.blend_w);
        row.push_back(tile.slice(2, 0, p.limit_t).slice(3, 0, p.limit_h).slice(4, 0, p.limit_w));
      }
      rows.push_back(at::cat(row, 4));
    }
    layers.push_back(at::cat(rows, 3));
  }
  return at::cat(layers, 2);
}

// A stand-in model with factor 1: each tile comes back shifted by 10 * its call number, so
// neighbouring tiles disagree and every blend is visible.
VaeTileFn ShiftingFn(int* calls, at::ScalarType dtype) {
  return [calls, dtype](const at::Tensor& tile) -> absl::StatusOr<at::Tensor> {
    return (tile.to(at::kFloat) + 10.0 * (*calls)++).to(dtype);
  };
}

TEST(VaeTilingTest, PipelineEncodePlanFor720pAndThe32FramePrefix) {
  auto p = PlanTiledEncode(32, 720, 1280, VaeTileOptions::ForPipeline(24), 8, 4);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->num_t, 3);
  EXPECT_EQ(p->num_h, 4);
  EXPECT_EQ(p->num_w, 7);
  EXPECT_EQ(p->stride_h, 192);
  EXPECT_EQ(p->stride_t, 12);
  EXPECT_EQ(p->blend_h, 8);
  EXPECT_EQ(p->blend_t, 0);
  EXPECT_EQ(p->limit_t, 3);
  EXPECT_EQ(p->limit_h, 24);
  ASSERT_EQ(p->tiles.size(), 84u);
  EXPECT_EQ(p->tiles.back().t_len, 8);    // 12, 12, 8 frames
  EXPECT_EQ(p->tiles.back().h_len, 144);  // 720 = 3 * 192 + 144
  EXPECT_EQ(p->tiles.back().w_len, 128);  // 1280 = 6 * 192 + 128
}

TEST(VaeTilingTest, PipelineDecodeOfAChunkGivesTheFullFrameSize) {
  auto p = PlanTiledDecode(6, 90, 160, VaeTileOptions::ForPipeline(24), 8, 4);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->tile_t, 3);
  EXPECT_EQ(p->tile_h, 32);
  EXPECT_EQ(p->stride_h, 24);
  EXPECT_EQ(p->blend_h, 64);
  EXPECT_EQ(p->limit_h, 192);
  EXPECT_EQ(p->limit_t, 12);
  EXPECT_EQ(p->num_t * p->num_h * p->num_w, 2 * 4 * 7);
  // A stand-in decoder with the reference's output rule (a 1-frame tile gives 1 frame).
  VaeTileFn fake = [](const at::Tensor& z) -> absl::StatusOr<at::Tensor> {
    const int64_t t = z.size(2) == 1 ? 1 : 4 * z.size(2);
    return at::zeros({z.size(0), 3, t, 8 * z.size(3), 8 * z.size(4)}, at::kBFloat16);
  };
  auto out = RunTiled(at::zeros({1, 16, 6, 90, 160}), *p, VaeBlendMode::kDecodeRawNeighbours, fake);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->sizes(), (std::vector<int64_t>{1, 3, 24, 720, 1280}));

  // v2v's partial chunk of 4 latent frames: tiles of 3 and 1 -> 12 + 1 frames.
  auto p4 = PlanTiledDecode(4, 6, 8, VaeTileOptions::ForPipeline(24), 8, 4);
  ASSERT_TRUE(p4.ok());
  auto out4 = RunTiled(at::zeros({1, 16, 4, 6, 8}), *p4, VaeBlendMode::kDecodeRawNeighbours, fake);
  ASSERT_TRUE(out4.ok()) << out4.status();
  EXPECT_EQ(out4->size(2), 13);
}

TEST(VaeTilingTest, UntiledWhenSpatialTilingIsOff) {
  VaeTileOptions o = VaeTileOptions::ForPipeline(24);
  o.allow_spatial_tiling = false;
  auto p = PlanTiledDecode(6, 90, 160, o, 8, 4);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->num_h, 1);
  EXPECT_EQ(p->num_w, 1);
  EXPECT_EQ(p->num_t, 2);
}

TEST(VaeTilingTest, EncodeBlendsInPlaceAndDecodeAgainstRawNeighbours) {
  VaeTileOptions o;
  o.tile_sample_min_height = o.tile_sample_min_width = 4;
  o.tile_sample_min_length = 4;
  o.spatial_tile_overlap_factor = 0.5;
  o.temporal_tile_overlap_factor = 0.5;
  auto p = PlanTiledEncode(6, 10, 9, o, 1, 1);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->blend_h, 2);
  EXPECT_EQ(p->blend_t, 2);
  at::Tensor x = at::randn({1, 2, 6, 10, 9}, at::TensorOptions().dtype(at::kFloat));
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    int a = 0, b = 0, c = 0, d = 0;
    auto enc = RunTiled(x, *p, VaeBlendMode::kEncodeInPlace, ShiftingFn(&a, dtype));
    auto dec = RunTiled(x, *p, VaeBlendMode::kDecodeRawNeighbours, ShiftingFn(&b, dtype));
    ASSERT_TRUE(enc.ok() && dec.ok());
    at::Tensor enc_ref = ReferenceTiled(x, *p, /*clone=*/false, ShiftingFn(&c, dtype));
    at::Tensor dec_ref = ReferenceTiled(x, *p, /*clone=*/true, ShiftingFn(&d, dtype));
    EXPECT_EQ(enc->sizes(), (std::vector<int64_t>{1, 2, 6, 10, 9}));
    EXPECT_TRUE(at::equal(*enc, enc_ref));
    EXPECT_TRUE(at::equal(*dec, dec_ref));
    // The two semantics really differ here (an upper tile's blended columns are re-read).
    EXPECT_FALSE(at::allclose(enc->to(at::kFloat), dec->to(at::kFloat)));
  }
}

TEST(VaeTilingTest, BlendFormulas) {
  at::Tensor a = at::arange(4, at::kFloat).view({1, 1, 1, 1, 4}) + 1;  // 1 2 3 4
  at::Tensor b = at::full({1, 1, 1, 1, 3}, 10.0);
  at::Tensor b1 = b.clone();
  BlendEagerInPlace(a, b1, 4, 2);  // extent 2: b[0] = a[2], b[1] = a[3] * 0.5 + b[1] * 0.5
  EXPECT_FLOAT_EQ(b1[0][0][0][0][0].item<float>(), 3.0f);
  EXPECT_FLOAT_EQ(b1[0][0][0][0][1].item<float>(), 7.0f);
  EXPECT_FLOAT_EQ(b1[0][0][0][0][2].item<float>(), 10.0f);
  at::Tensor b2 = b.clone();
  BlendFusedInPlace(a, b2, 4, 8);  // extent clipped to min(4, 3, 8) = 3
  EXPECT_FLOAT_EQ(b2[0][0][0][0][0].item<float>(), 2.0f);
  EXPECT_NEAR(b2[0][0][0][0][1].item<float>(), 3.0 * 2 / 3 + 10.0 / 3, 1e-5);
  // Fused rounds once to bf16; eager rounds each product and the sum.
  at::Tensor ab = at::full({1, 1, 1, 1, 2}, 1.0 + 1.0 / 128, at::kBFloat16);
  at::Tensor bb = at::full({1, 1, 1, 1, 2}, 3.0 + 1.0 / 64, at::kBFloat16);
  at::Tensor fused = bb.clone();
  BlendFusedInPlace(ab, fused, 4, 2);
  const double exact = (1.0 + 1.0 / 128) * 0.5 + (3.0 + 1.0 / 64) * 0.5;
  EXPECT_EQ(fused[0][0][0][0][1].item<float>(), at::scalar_tensor(exact, at::kBFloat16).item<float>());
}

TEST(VaeTilingTest, ErrorsNameTheProblem) {
  VaeTileOptions o;
  o.tile_sample_min_height = 1;  // stride int(1 * 0.75) = 0
  auto p = PlanTiledEncode(4, 8, 8, o, 8, 4);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("tile_sample_min_height"), std::string::npos) << p.status();
  o = VaeTileOptions();
  o.spatial_tile_overlap_factor = 1.0;
  p = PlanTiledEncode(4, 8, 8, o, 8, 4);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("spatial_tile_overlap_factor"), std::string::npos);
  o = VaeTileOptions();
  o.tile_sample_min_length = 2;  // less than one latent frame per decode tile
  EXPECT_FALSE(PlanTiledDecode(4, 8, 8, o, 8, 4).ok());
  EXPECT_FALSE(PlanTiledDecode(0, 8, 8, VaeTileOptions(), 8, 4).ok());

  // A failing tile stops the pass with its own error.
  auto plan = PlanTiledDecode(2, 4, 4, VaeTileOptions(), 8, 4);
  ASSERT_TRUE(plan.ok());
  auto r = RunTiled(at::zeros({1, 16, 2, 4, 4}), *plan, VaeBlendMode::kDecodeRawNeighbours,
                    [](const at::Tensor&) -> absl::StatusOr<at::Tensor> { return absl::DataLossError("boom"); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  // A plan for another input size is rejected, not read out of bounds.
  r = RunTiled(at::zeros({1, 16, 1, 4, 4}), *plan, VaeBlendMode::kDecodeRawNeighbours,
               [](const at::Tensor& t) -> absl::StatusOr<at::Tensor> { return t.clone(); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace magi
