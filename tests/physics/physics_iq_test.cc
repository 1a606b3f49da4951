// Physics-IQ's metrics on hand-made masks and frames, and the score's normalisation.
#include "physics/physics_iq.h"

#include <vector>

#include "gtest/gtest.h"

namespace magi {
namespace physics {
namespace {

// A w x h mask with the rectangle [x0, x1) x [y0, y1) set.
BinaryMask Rect(int w, int h, int x0, int y0, int x1, int y1) {
  BinaryMask m(w, h);
  for (int y = y0; y < y1; ++y) {
    for (int x = x0; x < x1; ++x) m.bits[static_cast<size_t>(y) * w + x] = 1;
  }
  return m;
}

RgbFrame Filled(int w, int h, uint8_t v) {
  RgbFrame f(w, h);
  std::fill(f.rgb24.begin(), f.rgb24.end(), v);
  return f;
}

// A dark square of side 6 at (x, 10) on a white 32x32 frame.
RgbFrame SquareAt(int x) {
  RgbFrame f = Filled(32, 32, 255);
  for (int y = 10; y < 16; ++y) {
    for (int xx = x; xx < x + 6; ++xx) {
      uint8_t* p = f.Pixel(xx, y);
      p[0] = p[1] = p[2] = 0;
    }
  }
  return f;
}

TEST(MaskIouTest, IdenticalDisjointAndKnownOverlap) {
  const BinaryMask a = Rect(8, 8, 0, 0, 4, 4);
  EXPECT_DOUBLE_EQ(*MaskIou(a, a), 1.0);
  EXPECT_DOUBLE_EQ(*MaskIou(a, Rect(8, 8, 4, 4, 8, 8)), 0.0);
  // 4x4 squares shifted by 2: intersection 8, union 24.
  EXPECT_DOUBLE_EQ(*MaskIou(a, Rect(8, 8, 2, 0, 6, 4)), 8.0 / 24.0);
  EXPECT_DOUBLE_EQ(*MaskIou(BinaryMask(8, 8), BinaryMask(8, 8)), 1.0) << "both empty agree";
  EXPECT_FALSE(MaskIou(a, BinaryMask(8, 7)).ok());
}

TEST(VideoIouTest, SpatialSpatiotemporalAndWeighted) {
  const BinaryMask left = Rect(8, 8, 0, 0, 4, 8);   // 32 px
  const BinaryMask right = Rect(8, 8, 4, 0, 8, 8);  // 32 px
  const BinaryMask empty(8, 8);
  // The same places in the opposite order: spatially identical, never at the same time.
  const std::vector<BinaryMask> truth = {left, right};
  const std::vector<BinaryMask> swapped = {right, left};
  EXPECT_DOUBLE_EQ(*SpatialIou(truth, swapped), 1.0);
  EXPECT_DOUBLE_EQ(*SpatiotemporalIou(truth, swapped), 0.0);
  EXPECT_DOUBLE_EQ(*WeightedSpatialIou(truth, swapped), 1.0);
  EXPECT_DOUBLE_EQ(*SpatiotemporalIou(truth, truth), 1.0);
  // Moving in half the frames where the truth moves in all: weighted min 1, max 2 per pixel.
  const std::vector<BinaryMask> always = {left, left};
  const std::vector<BinaryMask> once = {left, empty};
  EXPECT_DOUBLE_EQ(*WeightedSpatialIou(always, once), 0.5);
  EXPECT_DOUBLE_EQ(*SpatialIou(always, once), 1.0);
  // Per-frame IoU 1 then 0 (truth moves, candidate does not): mean 0.5.
  EXPECT_DOUBLE_EQ(*SpatiotemporalIou(always, once), 0.5);
  // Nothing moves in either: every IoU is 1.
  const std::vector<BinaryMask> still = {empty, empty};
  EXPECT_DOUBLE_EQ(*SpatialIou(still, still), 1.0);
  EXPECT_DOUBLE_EQ(*WeightedSpatialIou(still, still), 1.0);
  EXPECT_DOUBLE_EQ(*SpatiotemporalIou(still, still), 1.0);
  EXPECT_FALSE(SpatialIou(truth, {left}).ok());
}

TEST(MseTest, ScaledToUnitRange) {
  EXPECT_DOUBLE_EQ(*MeanSquaredError({Filled(4, 4, 0)}, {Filled(4, 4, 255)}), 1.0);
  EXPECT_NEAR(
      *MeanSquaredError({Filled(4, 4, 0), Filled(4, 4, 9)}, {Filled(4, 4, 51), Filled(4, 4, 9)}),
      0.04 / 2, 1e-12);
  EXPECT_FALSE(MeanSquaredError({Filled(4, 4, 0)}, {Filled(4, 2, 0)}).ok());
  EXPECT_FALSE(MeanSquaredError({}, {}).ok());
}

TEST(GrayTest, OpenCvBt601) {
  EXPECT_EQ(Gray(255, 255, 255), 255);
  EXPECT_EQ(Gray(0, 0, 0), 0);
  EXPECT_EQ(Gray(255, 0, 0), 76);
  EXPECT_EQ(Gray(0, 255, 0), 150);
  EXPECT_EQ(Gray(0, 0, 255), 29);
}

TEST(MotionMasksTest, StaticIsEmptyAndAMovingSquareIsFound) {
  const std::vector<RgbFrame> still(5, SquareAt(4));
  absl::StatusOr<std::vector<BinaryMask>> m = MotionMasks(still);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 5u);
  for (const BinaryMask& f : *m) {
    for (uint8_t b : f.bits) ASSERT_EQ(b, 0);
  }
  const std::vector<RgbFrame> moving = {SquareAt(4), SquareAt(12), SquareAt(20)};
  m = MotionMasks(moving);
  ASSERT_TRUE(m.ok()) << m.status();
  for (uint8_t b : (*m)[0].bits) ASSERT_EQ(b, 0) << "the first mask is empty by definition";
  const BinaryMask& second = (*m)[1];
  // Where the square arrived (x 12..17) and where it left (x 4..9) both differ from the
  // background; far away nothing does.
  EXPECT_EQ(second.bits[12 * 32 + 14], 1);
  EXPECT_EQ(second.bits[12 * 32 + 6], 1);
  EXPECT_EQ(second.bits[12 * 32 + 28], 0);
  EXPECT_EQ(second.bits[28 * 32 + 14], 0);
  // Opening removes an isolated changed pixel.
  std::vector<RgbFrame> speck = {Filled(16, 16, 200), Filled(16, 16, 200)};
  speck[1].Pixel(8, 8)[0] = 0;
  speck[1].Pixel(8, 8)[1] = 0;
  m = MotionMasks(speck);
  for (uint8_t b : (*m)[1].bits) ASSERT_EQ(b, 0);
  MotionMaskOptions raw;
  raw.morph_kernel = 1;
  m = MotionMasks(speck, raw);
  EXPECT_EQ((*m)[1].bits[8 * 16 + 8], 1);
}

TEST(MotionMasksTest, BadInputNamesTheProblem) {
  EXPECT_FALSE(MotionMasks({}).ok());
  absl::StatusOr<std::vector<BinaryMask>> m = MotionMasks({Filled(4, 4, 0), Filled(4, 2, 0)});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("frame 1"), absl::string_view::npos) << m.status();
  MotionMaskOptions o;
  o.morph_kernel = 4;
  m = MotionMasks({Filled(4, 4, 0)}, o);
  EXPECT_NE(m.status().message().find("morph_kernel"), absl::string_view::npos) << m.status();
}

TEST(PhysicsIqScoreTest, TruthIs100AndTheScoreIsClipped) {
  const std::vector<RgbFrame> truth = {SquareAt(4), SquareAt(8), SquareAt(12), SquareAt(16)};
  absl::StatusOr<SceneMetrics> self = ScoreContinuation(truth, truth);
  ASSERT_TRUE(self.ok()) << self.status();
  EXPECT_DOUBLE_EQ(self->spatial_iou, 1.0);
  EXPECT_DOUBLE_EQ(self->mse, 0.0);
  absl::StatusOr<MethodSummary> s =
      Summarize({*self, *self}, {PhysicalVarianceOfTruth(), PhysicalVarianceOfTruth()});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->physics_iq, 100.0);

  const std::vector<RgbFrame> held(4, SquareAt(4));
  absl::StatusOr<SceneMetrics> frozen = ScoreContinuation(truth, held);
  ASSERT_TRUE(frozen.ok());
  EXPECT_DOUBLE_EQ(frozen->spatial_iou, 0.0);
  EXPECT_GT(frozen->mse, 0.0);
  s = Summarize({*frozen}, {PhysicalVarianceOfTruth()});
  // Only frame 0 agrees (both first masks are empty by definition): spatiotemporal IoU 1/4.
  EXPECT_DOUBLE_EQ(frozen->spatiotemporal_iou, 0.25);
  // By frame: frame 0 is the truth's one still frame (kept still), frames 1-3 move (IoU 0).
  EXPECT_EQ(frozen->frames, 4);
  EXPECT_EQ(frozen->still_frames, 1);
  EXPECT_EQ(frozen->still_agreed, 1);
  EXPECT_DOUBLE_EQ(frozen->moving_iou_sum, 0.0);
  EXPECT_EQ(self->still_agreed, 1);
  EXPECT_DOUBLE_EQ(self->moving_iou_sum, 3.0);
  EXPECT_EQ(s->mean.frames, 4);
  EXPECT_DOUBLE_EQ(s->mean.StillShare(), 0.25);
  EXPECT_DOUBLE_EQ(s->mean.StillAgreement(), 1.0);
  EXPECT_DOUBLE_EQ(s->mean.MovingIou(), 0.0);
  // A candidate that moves where the truth has come to rest loses those frames: the truth
  // steps once and rests (its background average catches up within a few frames), the
  // candidate goes on stepping.
  std::vector<RgbFrame> rests = {SquareAt(2), SquareAt(6)}, steps = rests;
  for (int k = 2; k < 12; ++k) {
    rests.push_back(SquareAt(6));
    steps.push_back(SquareAt(2 + 2 * k));
  }
  absl::StatusOr<SceneMetrics> restless = ScoreContinuation(rests, steps);
  ASSERT_TRUE(restless.ok());
  EXPECT_GE(restless->still_frames, 4);
  EXPECT_EQ(restless->still_agreed, 1);  // frame 0 only
  EXPECT_NEAR(restless->spatiotemporal_iou,
              (restless->still_agreed + restless->moving_iou_sum) / restless->frames, 1e-12);
  EXPECT_NEAR(s->physics_iq, 100.0 * (0.25 / 3.0 - frozen->mse), 1e-9);
  SceneMetrics awful{0.0, 0.0, 0.0, 0.5};
  s = Summarize({awful}, {PhysicalVarianceOfTruth()});
  EXPECT_DOUBLE_EQ(s->physics_iq, 0.0) << "clipped at 0";

  // The formula: mean IoU / variance averaged over three, minus the MSE excess.
  SceneMetrics m{0.6, 0.3, 0.45, 0.05};
  SceneMetrics v{0.8, 0.6, 0.9, 0.01};
  s = Summarize({m}, {v});
  EXPECT_NEAR(s->physics_iq, 100.0 * ((0.75 + 0.5 + 0.5) / 3.0 - 0.04), 1e-9);
  EXPECT_FALSE(Summarize({m}, {}).ok());
}

}  // namespace
}  // namespace physics
}  // namespace magi
