// gemm::Linear / Conv3d / Matmul compute bf16 products with float32 accumulation and one
// rounding to bf16 (oneDNN and CUDA tensor-core semantics), whatever the host's ISA and
// whichever CPU kernels LibTorch would pick for a native bf16 op.
#include "kernels/gemm.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

namespace magi {
namespace {

// Bitwise equality, NaN-free inputs.
bool SameBits(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && at::equal(a, b);
}

// Runs `fn` with ATen's oneDNN (mkldnn) paths off: the kernels a CPU without AVX-512 gets
// for bf16 GEMM/conv in LibTorch 1.13. Restores the previous setting.
template <typename Fn>
void WithoutOneDnn(Fn fn) {
  const bool before = at::globalContext().userEnabledMkldnn();
  at::globalContext().setUserEnabledMkldnn(false);
  fn();
  at::globalContext().setUserEnabledMkldnn(before);
}

at::Tensor Bf16(const at::Tensor& t) { return t.to(at::kBFloat16); }

// Multiples of 1/16 in [-1, 1]: bf16-exact, and every float32 sum of their products over a
// few hundred terms is exact, so "float32 accumulation, one rounding" has one answer whatever
// the summation order, while any bf16 rounding of a partial sum shows.
at::Tensor Dyadic(at::IntArrayRef shape) { return Bf16(at::randint(-16, 17, shape).to(at::kFloat) / 16.0); }

TEST(GemmTest, Bf16LinearIsTheFloat32ProductRoundedOnce) {
  at::manual_seed(11);
  at::Tensor x = Dyadic({7, 5, 96}), w = Dyadic({48, 96}), b = Dyadic({48});
  const at::Tensor want = at::linear(x.to(at::kFloat), w.to(at::kFloat), b.to(at::kFloat)).to(at::kBFloat16);
  at::Tensor got = gemm::Linear(x, w, b);
  EXPECT_TRUE(SameBits(got, want));
  WithoutOneDnn([&] { EXPECT_TRUE(SameBits(gemm::Linear(x, w, b), want)); });
}

TEST(GemmTest, AccumulationIsFloat32NotBf16) {
  // 1 + 256 * 2^-9: a float32 sum gives 1.5 (exact in bf16); a sum rounded to bf16 at any
  // step loses every 2^-9 (bf16 has 8 significant bits) and gives 1.
  at::Tensor x = at::full({1, 257}, std::ldexp(1.0, -9)).to(at::kBFloat16);
  x[0][0] = 1.0;
  at::Tensor w = at::ones({1, 257}, at::kBFloat16);
  EXPECT_EQ(gemm::Linear(x, w).item<float>(), 1.5f);
  EXPECT_EQ(gemm::Matmul(x, w.t()).item<float>(), 1.5f);
  at::Tensor xc = x.view({1, 257, 1, 1, 1}), wc = w.view({1, 257, 1, 1, 1});
  EXPECT_EQ(gemm::Conv3d(xc, wc, at::Tensor(), {1, 1, 1}).item<float>(), 1.5f);
  WithoutOneDnn([&] {
    EXPECT_EQ(gemm::Linear(x, w).item<float>(), 1.5f);
    EXPECT_EQ(gemm::Conv3d(xc, wc, at::Tensor(), {1, 1, 1}).item<float>(), 1.5f);
  });
}

TEST(GemmTest, Bf16Conv3dIsTheFloat32ConvRoundedOnce) {
  at::manual_seed(12);
  at::Tensor x = Dyadic({1, 4, 8, 12, 12}), w = Dyadic({6, 4, 3, 3, 3}), b = Dyadic({6});
  for (const auto& [stride, pad] : std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>{
           {{1, 1, 1}, {1, 1, 1}}, {{4, 2, 2}, {0, 0, 0}}}) {
    at::Tensor want =
        at::conv3d(x.to(at::kFloat), w.to(at::kFloat), b.to(at::kFloat), stride, pad).to(at::kBFloat16);
    EXPECT_TRUE(SameBits(gemm::Conv3d(x, w, b, stride, pad), want));
    WithoutOneDnn([&] { EXPECT_TRUE(SameBits(gemm::Conv3d(x, w, b, stride, pad), want)); });
  }
}

TEST(GemmTest, Bf16MatmulIsTheFloat32MatmulRoundedOnce) {
  at::manual_seed(13);
  at::Tensor a = Dyadic({3, 33, 64}), b = Dyadic({3, 64, 17});
  const at::Tensor want = at::matmul(a.to(at::kFloat), b.to(at::kFloat)).to(at::kBFloat16);
  EXPECT_TRUE(SameBits(gemm::Matmul(a, b), want));
  WithoutOneDnn([&] { EXPECT_TRUE(SameBits(gemm::Matmul(a, b), want)); });
}

TEST(GemmTest, Bf16GeluIsTheExactGeluRoundedOnce) {
  at::Tensor x = Bf16(at::linspace(-6, 6, 4097));
  at::Tensor d = x.to(at::kDouble);
  const at::Tensor want = (d * 0.5 * (1.0 + at::erf(d / std::sqrt(2.0)))).to(at::kBFloat16);
  EXPECT_TRUE(SameBits(gemm::Gelu(x), want));
  WithoutOneDnn([&] { EXPECT_TRUE(SameBits(gemm::Gelu(x), want)); });
  // float32 keeps ATen's GELU.
  at::Tensor f = at::linspace(-3, 3, 101);
  EXPECT_TRUE(SameBits(gemm::Gelu(f), at::gelu(f)));
}

TEST(GemmTest, Float32IsUnchangedAndMixedInputsPromote) {
  at::manual_seed(14);
  at::Tensor x = at::randn({9, 32}), w = at::randn({16, 32}), b = at::randn({16});
  EXPECT_TRUE(SameBits(gemm::Linear(x, w, b), at::linear(x, w, b)));
  // A bf16 weight with a float32 activation computes (and returns) float32.
  at::Tensor got = gemm::Linear(x, Bf16(w));
  EXPECT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_TRUE(SameBits(got, at::linear(x, Bf16(w).to(at::kFloat))));
}

}  // namespace
}  // namespace magi
