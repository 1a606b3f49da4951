// The 'ar' golden cases of shared/golden/A through the same code as magi-golden.
#include <cstdio>

#include <gtest/gtest.h>

#include "tools/golden/golden_report.h"

namespace magi {
namespace {

TEST(ArGolden, EveryCaseOfFolderAPasses) {
  GoldenContext ctx;
  ctx.dir = MAGI_GOLDEN_DIR;
  GoldenReport report(stdout);
  RunArCases(ctx, report);
  std::printf("%s\n", report.Summary().c_str());
  EXPECT_EQ(report.failed(), 0);
  EXPECT_EQ(report.skipped(), 0);
  EXPECT_GT(report.passed(), 7 * 10);
}

}  // namespace
}  // namespace magi
