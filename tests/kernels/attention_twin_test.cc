// RangeAttention's two paths against each other: the fused SDPA path (what CUDA tensors run)
// and the blocked float32 path (CPU). On CPU the fused path goes through ATen's math SDPA, so
// the range/GQA/layout logic of the CUDA path is checked here on every machine; the CUDA twin
// runs the real dispatch on a GPU and skips, saying why, where there is none.
#include "kernels/attention.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <cmath>

namespace magi {
namespace {

struct Case {
  at::Tensor q, k, v;
  std::vector<TokenRange> q_ranges, k_ranges;
  double scale;
};

// Block-causal self-attention over 3 chunks of 5 queries (chunk j sees keys [0, 5(j+1)) plus a
// 4-row cached prefix), a pair with an empty key range, and 2 query rows outside every range;
// GQA with 6 query heads over 2 K/V groups.
Case MakeCase(at::ScalarType dtype) {
  at::manual_seed(7);
  const int64_t Sq = 17, Sk = 19, Hq = 6, G = 2, d = 16;
  Case c;
  c.q = at::randn({Sq, Hq, d}).to(dtype);
  c.k = at::randn({Sk, G, d}).to(dtype);
  c.v = at::randn({Sk, G, d}).to(dtype);
  c.q_ranges = {{0, 5}, {5, 10}, {10, 15}, {15, 16}};
  c.k_ranges = {{0, 9}, {0, 14}, {4, 19}, {3, 3}};
  c.scale = 1.0 / std::sqrt(static_cast<double>(d));
  return c;
}

double MaxDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kFloat) - b.to(at::kCPU, at::kFloat)).abs().max().item<double>();
}

TEST(AttentionTwinTest, FusedPathMatchesTheBlockedPathOnCpu) {
  Case c = MakeCase(at::kFloat);
  at::Tensor blocked = RangeAttention(c.q, c.k, c.v, c.q_ranges, c.k_ranges, c.scale);
  at::Tensor fused = RangeAttentionSdpa(c.q, c.k, c.v, c.q_ranges, c.k_ranges, c.scale);
  ASSERT_EQ(fused.sizes(), blocked.sizes());
  EXPECT_LT(MaxDiff(fused, blocked), 1e-5);
  // Rows 15 (empty key range) and 16 (no range) are zero on both paths.
  EXPECT_EQ(fused.narrow(0, 15, 2).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(blocked.narrow(0, 15, 2).abs().max().item<float>(), 0.0f);
  // A non-default scale takes the same route on both (1.13/2.0 pre-scale q).
  at::Tensor b2 = RangeAttention(c.q, c.k, c.v, c.q_ranges, c.k_ranges, 0.5);
  at::Tensor f2 = RangeAttentionSdpa(c.q, c.k, c.v, c.q_ranges, c.k_ranges, 0.5);
  EXPECT_LT(MaxDiff(f2, b2), 1e-5);
  EXPECT_GT(MaxDiff(f2, blocked), 1e-2);  // the scale mattered
}

TEST(AttentionTwinTest, FusedPathGetsGroupsRightForEveryHead) {
  // Each query head must attend over its own group (head h -> group h / rep): swapping the
  // two groups' values changes exactly the heads of those groups.
  Case c = MakeCase(at::kFloat);
  at::Tensor base = RangeAttentionSdpa(c.q, c.k, c.v, c.q_ranges, c.k_ranges, c.scale);
  at::Tensor v2 = c.v.clone();
  v2.select(1, 1).normal_();
  at::Tensor changed = RangeAttentionSdpa(c.q, c.k, v2, c.q_ranges, c.k_ranges, c.scale);
  EXPECT_EQ(MaxDiff(base.narrow(1, 0, 3), changed.narrow(1, 0, 3)), 0.0);
  EXPECT_GT(MaxDiff(base.narrow(1, 3, 3), changed.narrow(1, 3, 3)), 1e-3);
}

TEST(AttentionTwinTest, FusedPathInBf16StaysWithinBf16Precision) {
  Case c = MakeCase(at::kBFloat16);
  at::Tensor ref = RangeAttention(c.q.to(at::kFloat), c.k.to(at::kFloat), c.v.to(at::kFloat), c.q_ranges,
                                  c.k_ranges, c.scale);
  at::Tensor fused = RangeAttentionSdpa(c.q, c.k, c.v, c.q_ranges, c.k_ranges, c.scale);
  EXPECT_EQ(fused.scalar_type(), at::kBFloat16);
  EXPECT_LT(MaxDiff(fused, ref), 3e-2 * ref.abs().max().item<double>());
}

TEST(AttentionTwinTest, CudaMatchesCpu) {
  if (!at::hasCUDA()) {
    GTEST_SKIP() << "no CUDA: this LibTorch was built without CUDA or no GPU is visible; the fused path's logic "
                    "is still checked on CPU by the tests above";
  }
  const at::Device cuda(at::kCUDA, 0);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    Case c = MakeCase(dtype);
    at::Tensor cpu = RangeAttention(c.q.to(at::kFloat), c.k.to(at::kFloat), c.v.to(at::kFloat), c.q_ranges,
                                    c.k_ranges, c.scale);
    at::Tensor gpu = RangeAttention(c.q.to(cuda), c.k.to(cuda), c.v.to(cuda), c.q_ranges, c.k_ranges, c.scale);
    EXPECT_TRUE(gpu.is_cuda());
    EXPECT_EQ(gpu.scalar_type(), dtype);
    const double tol = dtype == at::kFloat ? 1e-3 : 3e-2 * cpu.abs().max().item<double>();
    EXPECT_LT(MaxDiff(gpu, cpu), tol) << "dtype " << dtype;
  }
}

}  // namespace
}  // namespace magi
