// The fused CPU range attention (kernels/flash_attention_cpu.h) against its unfused twin
// (RangeAttentionUnfused) and float64 math, and its instruction-set builds against each other:
// AVX-512, AVX2 and the portable build must give the same bits (a project rule: results may not
// depend on the host CI runs on). Builds the CPU lacks are skipped, saying so.
#include "kernels/flash_attention_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "kernels/attention.h"

namespace magi {
namespace {

struct Case {
  at::Tensor q, k, v;
  std::vector<TokenRange> q_ranges, k_ranges;
  double scale = 0;
  std::string name;
};

// Block-causal ranges over `chunks` chunks of odd length plus a cached prefix, an empty key
// range, an empty query range, an unaligned (cross-attention-like) key range, and rows outside
// every range. k and v are views of one [Sk, G, 2d] buffer, as the DiT passes them.
Case MakeCase(int64_t heads, int64_t groups, int64_t d, at::ScalarType dtype, uint64_t seed, int64_t chunk = 37,
              int chunks = 3) {
  at::manual_seed(static_cast<int64_t>(seed));
  std::mt19937_64 rng(seed);
  const int64_t prefix = 2 * chunk + 5;  // not a multiple of 16
  const int64_t sq = chunks * chunk + 9, sk = prefix + chunks * chunk;
  Case c;
  c.q = (at::randn({sq, heads, d}) * 2).to(dtype);
  at::Tensor kv = (at::randn({sk, groups, 2 * d}) * 2).to(dtype);
  c.k = kv.narrow(2, 0, d);
  c.v = kv.narrow(2, d, d);
  for (int j = 0; j < chunks; ++j) {
    c.q_ranges.emplace_back(j * chunk, (j + 1) * chunk);
    c.k_ranges.emplace_back(0, prefix + (j + 1) * chunk);
  }
  c.q_ranges.emplace_back(chunks * chunk, chunks * chunk + 3);  // empty key range -> zeros
  c.k_ranges.emplace_back(7, 7);
  c.q_ranges.emplace_back(5, 5);  // empty query range
  c.k_ranges.emplace_back(0, 10);
  const int64_t a = 3 + static_cast<int64_t>(rng() % 20);
  c.q_ranges.emplace_back(chunks * chunk + 3, chunks * chunk + 7);  // unaligned start and end
  c.k_ranges.emplace_back(a, std::min(sk, a + 1 + static_cast<int64_t>(rng() % 150)));
  // rows [chunks * chunk + 7, sq) are outside every range -> zeros
  c.scale = 1.0 / std::sqrt(static_cast<double>(d));
  c.name = std::to_string(heads) + "/" + std::to_string(groups) + " d" + std::to_string(d) + " " +
           std::string(c10::toString(dtype));
  return c;
}

// softmax(q k^T * scale) v per pair and head in float64 from the (rounded) inputs.
at::Tensor Float64Reference(const Case& c) {
  const int64_t heads = c.q.size(1), groups = c.k.size(1), rep = heads / groups;
  at::Tensor q = c.q.to(at::kDouble), k = c.k.to(at::kDouble), v = c.v.to(at::kDouble);
  at::Tensor out = at::zeros({q.size(0), heads, v.size(2)}, at::kDouble);
  for (size_t i = 0; i < c.q_ranges.size(); ++i) {
    const auto [q0, q1] = c.q_ranges[i];
    const auto [k0, k1] = c.k_ranges[i];
    if (q1 <= q0 || k1 <= k0) continue;
    for (int64_t h = 0; h < heads; ++h) {
      at::Tensor qs = q.slice(0, q0, q1).select(1, h);
      at::Tensor ks = k.slice(0, k0, k1).select(1, h / rep), vs = v.slice(0, k0, k1).select(1, h / rep);
      out.slice(0, q0, q1).select(1, h).copy_(at::softmax(at::matmul(qs, ks.t()) * c.scale, -1).matmul(vs));
    }
  }
  return out;
}

double MaxAbs(const at::Tensor& a) { return a.abs().max().item<double>(); }

TEST(FlashAttentionTest, MatchesTheUnfusedTwinAndFloat64) {
  std::printf("selected build: %s\n", CpuIsaName(SelectedCpuIsa()));
  const std::pair<int64_t, int64_t> head_groups[] = {{1, 1}, {8, 4}, {24, 8}, {6, 6}};
  uint64_t seed = 11;
  for (auto [heads, groups] : head_groups) {
    for (int64_t d : {64, 128}) {
      for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
        const Case c = MakeCase(heads, groups, d, dtype, seed++);
        SCOPED_TRACE(c.name);
        at::Tensor fused = RangeAttention(c.q, c.k, c.v, c.q_ranges, c.k_ranges, c.scale);
        at::Tensor unfused = RangeAttentionUnfused(c.q, c.k, c.v, c.q_ranges, c.k_ranges, c.scale);
        at::Tensor exact = Float64Reference(c);
        ASSERT_EQ(fused.scalar_type(), dtype);
        ASSERT_EQ(fused.sizes(), unfused.sizes());
        // float32: scores of |s| ~ 10 carry ~1e-6 absolute rounding (either path); bf16: one
        // output rounding (2^-8 relative).
        const double tol = dtype == at::kFloat ? 5e-6 : 1e-2;
        const double scale = MaxAbs(exact);
        EXPECT_LE(MaxAbs(fused.to(at::kDouble) - exact), tol * scale);
        EXPECT_LE(MaxAbs(fused.to(at::kDouble) - unfused.to(at::kDouble)), tol * scale);
        if (dtype == at::kFloat) {
          // Not worse than the unfused float32 path by more than a few roundings.
          EXPECT_LE(MaxAbs(fused.to(at::kDouble) - exact), 4 * MaxAbs(unfused.to(at::kDouble) - exact) + 1e-6 * scale);
        }
        // Empty key range, rows outside every range: zeros.
        const int64_t tail = c.q_ranges[c.q_ranges.size() - 3].first;
        EXPECT_EQ(MaxAbs(fused.narrow(0, tail, 3).to(at::kFloat)), 0.0);
        EXPECT_EQ(MaxAbs(fused.narrow(0, tail + 7, fused.size(0) - tail - 7).to(at::kFloat)), 0.0);
      }
    }
  }
}

TEST(FlashAttentionTest, LongKeyRangesStayAccurate) {
  // Several key blocks per pair with a large dynamic range of scores: the running max moves.
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    Case c = MakeCase(8, 4, 128, dtype, 99, /*chunk=*/301, /*chunks=*/3);
    c.q = (c.q.to(at::kFloat) * 3).to(dtype);
    at::Tensor fused = RangeAttention(c.q, c.k, c.v, c.q_ranges, c.k_ranges, c.scale);
    at::Tensor unfused = RangeAttentionUnfused(c.q, c.k, c.v, c.q_ranges, c.k_ranges, c.scale);
    at::Tensor exact = Float64Reference(c);
    const double err = MaxAbs(fused.to(at::kDouble) - exact), err_unfused = MaxAbs(unfused.to(at::kDouble) - exact);
    std::printf("%s: max error fused %.3g, unfused %.3g (max |out| %.3g)\n", c10::toString(dtype), err, err_unfused,
                MaxAbs(exact));
    const double tol = dtype == at::kFloat ? 2e-5 : 1e-2;
    EXPECT_LE(err, tol * MaxAbs(exact)) << c10::toString(dtype);
    EXPECT_LE(err, 2 * err_unfused + 1e-6 * MaxAbs(exact)) << c10::toString(dtype);
  }
}

TEST(FlashAttentionTest, EveryBuildGivesTheSameBits) {
  const CpuIsa builds[] = {CpuIsa::kAvx512, CpuIsa::kAvx2, CpuIsa::kPortable};
  int compared = 0;
  uint64_t seed = 500;
  const std::pair<int64_t, int64_t> head_groups[] = {{1, 1}, {8, 4}, {24, 8}, {6, 6}};
  for (auto [heads, groups] : head_groups) {
    for (int64_t d : {64, 128}) {
      for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
        const Case c = MakeCase(heads, groups, d, dtype, seed++, /*chunk=*/heads > 8 ? 23 : 150, 3);
        SCOPED_TRACE(c.name);
        at::Tensor first;
        for (CpuIsa isa : builds) {
          if (!CpuHasIsa(isa)) continue;
          at::Tensor out = FlashRangeAttentionCpu(c.q, c.k, c.v, c.q_ranges, c.k_ranges, c.scale, isa);
          if (!first.defined()) {
            first = out;
            continue;
          }
          ++compared;
          EXPECT_TRUE(at::equal(out, first)) << CpuIsaName(isa) << " differs by "
                                             << MaxAbs((out - first).to(at::kFloat));
        }
      }
    }
  }
  if (!CpuHasIsa(CpuIsa::kAvx512) || !CpuHasIsa(CpuIsa::kAvx2)) {
    std::printf("this CPU lacks %s: compared the builds it has (%d comparisons)\n",
                CpuHasIsa(CpuIsa::kAvx2) ? "AVX-512" : "AVX2", compared);
  }
  EXPECT_GT(compared, 0);
}

TEST(FlashAttentionTest, ThreadCountDoesNotChangeTheBits) {
  const Case c = MakeCase(8, 4, 128, at::kFloat, 77, 150, 3);
  const int saved = at::get_num_threads();
  at::set_num_threads(1);
  at::Tensor one = RangeAttention(c.q, c.k, c.v, c.q_ranges, c.k_ranges, c.scale);
  at::set_num_threads(2);
  at::Tensor two = RangeAttention(c.q, c.k, c.v, c.q_ranges, c.k_ranges, c.scale);
  at::set_num_threads(saved);
  EXPECT_TRUE(at::equal(one, two));
}

TEST(FlashAttentionTest, OtherShapesFallBackToTheUnfusedPath) {
  // A value head dim that is not a multiple of 16 is not fused; RangeAttention still works.
  at::manual_seed(5);
  at::Tensor q = at::randn({10, 2, 12}), k = at::randn({10, 1, 12}), v = at::randn({10, 1, 12});
  EXPECT_FALSE(FlashAttentionSupports(q, k, v));
  std::vector<TokenRange> r = {{0, 10}};
  EXPECT_TRUE(at::allclose(RangeAttention(q, k, v, r, r, 0.3), RangeAttentionUnfused(q, k, v, r, r, 0.3)));
}

}  // namespace
}  // namespace magi
