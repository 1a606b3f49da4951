// Runs magi-golden's VAE cases on golden folder A (the checker's vae_cases.cc is compiled
// into this test, as tools/golden/CMakeLists.txt asks of tests that want a case kind).
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "tools/golden/vae_cases.cc"

namespace magi {
namespace {

TEST(VaeGoldenTest, EveryCasePasses) {
  GoldenContext ctx;
  ctx.dir = MAGI_GOLDEN_DIR;
  GoldenReport report(stdout);
  RunVaeCases(ctx, report);
  EXPECT_EQ(report.failed(), 0) << report.Summary();
  EXPECT_EQ(report.skipped(), 0) << report.Summary();
  // 2 tile-layout checks + 8 encode + 7 decode tensors in golden A.
  EXPECT_EQ(report.passed(), 17) << report.Summary();
}

// The same cases through LibTorch's CPU kernels without oneDNN: the bf16 GEMM/conv path a host
// without AVX-512 takes. Results must not depend on which one the host has.
TEST(VaeGoldenTest, EveryCasePassesWithoutOneDnn) {
  const bool before = at::globalContext().userEnabledMkldnn();
  at::globalContext().setUserEnabledMkldnn(false);
  GoldenContext ctx;
  ctx.dir = MAGI_GOLDEN_DIR;
  GoldenReport report(stdout);
  RunVaeCases(ctx, report);
  at::globalContext().setUserEnabledMkldnn(before);
  EXPECT_EQ(report.failed(), 0) << report.Summary();
  EXPECT_EQ(report.passed(), 17) << report.Summary();
}

}  // namespace
}  // namespace magi
