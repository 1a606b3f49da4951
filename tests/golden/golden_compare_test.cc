#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tools/golden/golden_report.h"

namespace magi {
namespace {

TEST(CompareToReferenceTest, MeasuresTheLargestDifferenceRelativeToTheReference) {
  const at::Tensor ref = at::tensor({1.0, -4.0, 2.0}, at::kDouble);
  const at::Tensor ours = at::tensor({1.0, -4.5, 2.0}, at::kFloat);
  GoldenComparison c = CompareToReference(ours, ref);
  EXPECT_TRUE(c.error.empty()) << c.error;
  EXPECT_EQ(c.compared, 3);
  EXPECT_DOUBLE_EQ(c.max_diff, 0.5);
  EXPECT_DOUBLE_EQ(c.max_ref, 4.0);
  EXPECT_DOUBLE_EQ(c.ratio(), 0.125);
}

TEST(CompareToReferenceTest, NanInTheReferenceIsSkippedButNotInOurs) {
  const at::Tensor ref = at::tensor({1.0, NAN, 2.0}, at::kDouble);
  GoldenComparison c = CompareToReference(at::tensor({1.0, 123.0, 2.0}, at::kDouble), ref);
  EXPECT_TRUE(c.error.empty()) << c.error;
  EXPECT_EQ(c.compared, 2);
  EXPECT_EQ(c.max_diff, 0.0);
  c = CompareToReference(at::tensor({1.0, 0.0, NAN}, at::kDouble), ref);
  EXPECT_FALSE(c.error.empty());
  EXPECT_FALSE(c.ratio() <= 1.0);
}

TEST(CompareToReferenceTest, NothingToCompareNeverPasses) {
  GoldenComparison c = CompareToReference(at::zeros({4}), at::full({4}, NAN));
  EXPECT_NE(c.error.find("NaN"), std::string::npos) << c.error;
  EXPECT_FALSE(c.ratio() <= 1.0);
  c = CompareToReference(at::zeros({0}), at::zeros({0}));
  EXPECT_NE(c.error.find("empty"), std::string::npos) << c.error;
  c = CompareToReference(at::zeros({2, 3}), at::zeros({3, 2}));
  EXPECT_NE(c.error.find("shape"), std::string::npos) << c.error;
}

TEST(GoldenReportTest, ACheckWithAnErrorFailsWhateverTheTolerance) {
  std::FILE* sink = std::tmpfile();
  GoldenReport report(sink);
  EXPECT_FALSE(report.CheckTensor("all_nan", at::zeros({3}), at::full({3}, NAN), 1e9));
  EXPECT_TRUE(report.CheckTensor("same", at::ones({3}), at::ones({3}), 0.0));
  std::fclose(sink);
  EXPECT_EQ(report.failed(), 1);
  EXPECT_EQ(report.passed(), 1);
}

}  // namespace
}  // namespace magi
