#include "worker/engine/timestep_schedule.h"

#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "worker/model/safetensors.h"

namespace magi {
namespace {

std::vector<float> GoldenSchedule(const std::string& file) {
  auto f = SafetensorsFile::Open(std::string(MAGI_GOLDEN_DIR) + "/" + file);
  EXPECT_TRUE(f.ok()) << f.status();
  if (!f.ok()) return {};
  at::Tensor t = (*f)->Get("t_schedule")->contiguous();
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
}

TEST(TimestepSchedule, MatchesTheGoldensBitForBit) {
  for (auto [file, steps] : std::vector<std::pair<std::string, int>>{
           {"ar_cfg3.safetensors", 8}, {"ar_w4_s12_cfg1_distill.safetensors", 12},
           {"ar_w4_s16_cfg1_distill.safetensors", 16}}) {
    auto ours = TimestepSchedule(steps, "8,16,16");
    ASSERT_TRUE(ours.ok());
    std::vector<float> ref = GoldenSchedule(file);
    ASSERT_EQ(ours->size(), ref.size()) << file;
    for (size_t i = 0; i < ref.size(); ++i) EXPECT_EQ((*ours)[i], ref[i]) << file << " T[" << i << "]";
  }
}

TEST(TimestepSchedule, QuarterPointsAreTheGuidanceBreakpoints) {
  for (int n : {4, 8, 12, 16, 32, 64}) {
    auto t = TimestepSchedule(n, "8,16,16");
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->front(), 0.0f);
    EXPECT_NEAR(t->back(), 1.0f, 1e-6);  // fp32 rounding: the reference's last value need not be exactly 1
    EXPECT_NEAR((*t)[n / 4], 0.021739, 1e-6) << n;
    EXPECT_NEAR((*t)[n / 2], 0.1, 1e-6) << n;
    // The borderline the nearly-clean rule depends on: fp32 0.3 is above 0.3.
    EXPECT_GT(static_cast<double>((*t)[3 * n / 4]), 0.3) << n;
    for (int i = 0; i < n; ++i) EXPECT_LT((*t)[i], (*t)[i + 1]);
  }
}

TEST(TimestepSchedule, ShortcutGrids) {
  auto def = TimestepSchedule(12, "8,16,16");
  auto alt = TimestepSchedule(12, "16,16,8");
  ASSERT_TRUE(def.ok() && alt.ok());
  // g = 0.125 and 0.0625 after u = g², T = u / (3 − 2u).
  auto sd3 = [](double g) { double u = g * g; return u / (3 - 2 * u); };
  EXPECT_NEAR((*def)[1], sd3(0.125), 1e-7);
  EXPECT_NEAR((*def)[2], sd3(0.1875), 1e-7);
  EXPECT_NEAR((*alt)[1], sd3(0.0625), 1e-7);
  EXPECT_NEAR((*alt)[3], sd3(0.25), 1e-7);
  EXPECT_EQ(*TimestepSchedule(8, "16,16,8"), *TimestepSchedule(8, "8,16,16"));
  EXPECT_FALSE(TimestepSchedule(0, "").ok());
}

TEST(DistillIntervals, Patterns) {
  EXPECT_EQ(DistillIntervals(6, "8,16,16"), (std::vector<int>{2, 1, 1, 2, 1, 1}));
  EXPECT_EQ(DistillIntervals(6, "16,16,8"), (std::vector<int>{1, 1, 2, 1, 1, 2}));
  EXPECT_EQ(DistillIntervals(8, "8,16,16"), std::vector<int>(8, 1));
  EXPECT_EQ(DistillIntervals(12, "8,16,16")[3], 2);
}

}  // namespace
}  // namespace magi
