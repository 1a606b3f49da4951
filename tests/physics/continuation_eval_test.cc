// The continuation benchmark: baselines, a model's source, bad options.
#include "physics/continuation_eval.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace magi {
namespace physics {
namespace {

EvalOptions Small() {
  EvalOptions o;
  o.scenes = 6;
  o.seed = 3;
  o.frames = 48;
  o.context_frames = 12;
  return o;
}

// Continuation frames over all scenes.
int ContinuationFrames(const EvalOptions& o) { return o.scenes * (o.frames - o.context_frames); }

TEST(ContinuationEvalTest, GroundTruthIs100AndRepeatLastFrameIsWorse) {
  absl::StatusOr<std::vector<MethodRow>> rows = RunEval(Small());
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  const MethodRow& truth = (*rows)[0];
  const MethodRow& repeat = (*rows)[1];
  EXPECT_EQ(truth.method, "ground truth");
  EXPECT_EQ(repeat.method, "repeat last frame");
  EXPECT_DOUBLE_EQ(truth.summary.physics_iq, 100.0);
  EXPECT_DOUBLE_EQ(truth.summary.mean.spatial_iou, 1.0);
  EXPECT_DOUBLE_EQ(truth.summary.mean.spatiotemporal_iou, 1.0);
  EXPECT_DOUBLE_EQ(truth.summary.mean.weighted_spatial_iou, 1.0);
  EXPECT_DOUBLE_EQ(truth.summary.mean.mse, 0.0);
  EXPECT_LT(repeat.summary.physics_iq, 60.0);
  EXPECT_LT(repeat.summary.mean.spatial_iou, 0.6);
  EXPECT_GT(repeat.summary.mean.mse, 1e-3);
  // By frame: holding the last frame keeps every still frame still and scores 0 when moving;
  // the truth keeps all; the pooled breakdown adds up to the spatiotemporal IoU (equal-length
  // scenes, so the pooled and the per-scene means agree).
  const SceneMetrics& held = repeat.summary.mean;
  EXPECT_EQ(held.frames, ContinuationFrames(Small()));
  EXPECT_GT(held.still_frames, 0);
  EXPECT_EQ(held.still_agreed, held.still_frames);
  EXPECT_DOUBLE_EQ(held.MovingIou(), 0.0);
  EXPECT_EQ(truth.summary.mean.still_agreed, truth.summary.mean.still_frames);
  EXPECT_DOUBLE_EQ(truth.summary.mean.MovingIou(), 1.0);
  EXPECT_NEAR(held.spatiotemporal_iou, (held.still_agreed + held.moving_iou_sum) / held.frames, 1e-12);
  const std::string table = FormatTable(*rows);
  EXPECT_NE(table.find("Physics IQ"), std::string::npos);
  EXPECT_NE(table.find("repeat last frame"), std::string::npos);
  EXPECT_NE(table.find("kept still of them"), std::string::npos);
}

TEST(ContinuationEvalTest, AModelSourceGetsItsRow) {
  const EvalOptions o = Small();
  int calls = 0;
  ContinuationSource perfect =
      [&](int index, const Scene& scene,
          const std::vector<RgbFrame>& context) -> absl::StatusOr<std::vector<RgbFrame>> {
    ++calls;
    EXPECT_EQ(scene.seed, EvalSceneSeed(o.seed, index));
    EXPECT_EQ(static_cast<int>(context.size()), o.context_frames);
    absl::StatusOr<std::vector<RgbFrame>> all = RenderSceneRgb(scene, o.size, o.frames);
    if (!all.ok()) return all.status();
    return std::vector<RgbFrame>(all->begin() + o.context_frames, all->end());
  };
  // A continuation one frame late: worse than the truth, better than freezing.
  ContinuationSource late =
      [&](int, const Scene& scene,
          const std::vector<RgbFrame>&) -> absl::StatusOr<std::vector<RgbFrame>> {
    absl::StatusOr<std::vector<RgbFrame>> all = RenderSceneRgb(scene, o.size, o.frames);
    if (!all.ok()) return all.status();
    return std::vector<RgbFrame>(all->begin() + o.context_frames - 1, all->end() - 1);
  };
  absl::StatusOr<std::vector<MethodRow>> rows = RunEval(o, {{"perfect", perfect}, {"late", late}});
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_EQ(calls, o.scenes);
  EXPECT_EQ((*rows)[2].method, "perfect");
  EXPECT_DOUBLE_EQ((*rows)[2].summary.physics_iq, 100.0);
  EXPECT_LT((*rows)[3].summary.physics_iq, 100.0);
  EXPECT_GT((*rows)[3].summary.physics_iq, (*rows)[1].summary.physics_iq);
  EXPECT_LT((*rows)[3].summary.mean.mse, (*rows)[1].summary.mean.mse);
}

TEST(ContinuationEvalTest, WrongFrameCountIsAnErrorNamingTheMethod) {
  ContinuationSource short_source = [](int, const Scene&, const std::vector<RgbFrame>& context)
      -> absl::StatusOr<std::vector<RgbFrame>> { return context; };
  absl::StatusOr<std::vector<MethodRow>> rows = RunEval(Small(), {{"short", short_source}});
  ASSERT_FALSE(rows.ok());
  EXPECT_NE(rows.status().message().find("short, scene 0"), absl::string_view::npos)
      << rows.status();
}

TEST(ContinuationEvalTest, BadOptionsNameTheFlagAndRange) {
  struct Case {
    EvalOptions options;
    std::string expect;
  };
  std::vector<Case> cases;
  EvalOptions o = Small();
  o.scenes = 0;
  cases.push_back({o, "--scenes is 0; allowed: [1, 10000]"});
  o = Small();
  o.context_frames = 47;
  cases.push_back({o, "--context_frames is 47; allowed: [1, 46]"});
  o = Small();
  o.context_frames = 0;
  cases.push_back({o, "--context_frames is 0"});
  o = Small();
  o.size = 100;
  cases.push_back({o, "--size is 100"});
  o = Small();
  o.frames = 2;
  cases.push_back({o, "--frames is 2; allowed: [3, 1024]"});
  for (const Case& c : cases) {
    absl::Status s = CheckEvalOptions(c.options);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << c.expect;
    EXPECT_NE(s.message().find(c.expect), absl::string_view::npos) << s;
  }
  EXPECT_TRUE(CheckEvalOptions(Small()).ok());
}

TEST(ContinuationEvalTest, HeldOutSeedsAreDistinct) {
  std::vector<uint64_t> seeds;
  for (int i = 0; i < 100; ++i) seeds.push_back(EvalSceneSeed(1, i));
  std::sort(seeds.begin(), seeds.end());
  EXPECT_EQ(std::unique(seeds.begin(), seeds.end()), seeds.end());
  EXPECT_NE(EvalSceneSeed(1, 0), EvalSceneSeed(2, 0));
  for (uint64_t s : seeds) EXPECT_GT(s, 1000000u) << "must not collide with small training seeds";
}

}  // namespace
}  // namespace physics
}  // namespace magi
