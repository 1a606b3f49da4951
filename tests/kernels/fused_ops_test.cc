// The CPU twins of the fused kernels against the unfused math written out by hand.
#include "kernels/fused_ops.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "kernels/attention.h"
#include "kernels/norms.h"

namespace magi {
namespace {

at::Tensor ManualLn1p(const at::Tensor& z, const at::Tensor& w, const at::Tensor& b, double eps) {
  at::Tensor mean = z.mean(-1, true);
  at::Tensor var = (z - mean).pow(2).mean(-1, true);
  return (z - mean) / at::sqrt(var + eps) * (w + 1) + b;
}

TEST(FusedOpsTest, GatePostNormResidualMatchesTheUnfusedMath) {
  at::manual_seed(1);
  const int64_t rows = 37, dim = 96;
  at::Tensor x = at::randn({rows, dim}), gate = at::tanh(at::randn({rows, dim})), w = at::randn({dim}) * 0.1,
             b = at::randn({dim}) * 0.1, res = at::randn({rows, dim});
  at::Tensor want = ManualLn1p(x * gate, w, b, 1e-6) + res;
  at::Tensor got = GatePostNormResidual(x, gate, w, b, res, 1e-6, at::kFloat);
  EXPECT_LT((got - want).abs().max().item<float>(), 1e-5);
  // bf16 output: the fp32 result rounded once.
  at::Tensor got16 = GatePostNormResidual(x, gate.to(at::kBFloat16), w, b, res.to(at::kBFloat16), 1e-6, at::kBFloat16);
  EXPECT_EQ(got16.scalar_type(), at::kBFloat16);
  at::Tensor want16 = (ManualLn1p(x * gate.to(at::kBFloat16).to(at::kFloat), w, b, 1e-6) +
                       res.to(at::kBFloat16).to(at::kFloat)).to(at::kBFloat16);
  EXPECT_LE((got16.to(at::kFloat) - want16.to(at::kFloat)).abs().max().item<float>(),
            want16.to(at::kFloat).abs().max().item<float>() * 1e-2);
}

TEST(FusedOpsTest, LayerNorm1pUsesWeightPlusOne) {
  at::Tensor x = at::randn({5, 32}), w = at::zeros({32}), b = at::zeros({32});
  at::Tensor got = LayerNorm1p(x, w, b, 1e-6);
  // gamma = 0 + 1: plain standardisation.
  EXPECT_LT((got - ManualLn1p(x, w, b, 1e-6)).abs().max().item<float>(), 1e-5);
  EXPECT_LT(got.mean(-1).abs().max().item<float>(), 1e-5);
}

TEST(FusedOpsTest, RotaryRotatesPairsAndPassesTheTailThrough) {
  at::manual_seed(2);
  const int64_t S = 7, H = 3, d = 16, half = 6;  // rotary 12 of 16 dims
  at::Tensor x = at::randn({S, H, d}), ang = at::randn({S, half});
  at::Tensor got = ApplyRotary(x, at::sin(ang).view({S, 1, half}), at::cos(ang).view({S, 1, half}));
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t i = 0; i < half; ++i) {
        const float c = std::cos(ang[s][i].item<float>()), sn = std::sin(ang[s][i].item<float>());
        const float x1 = x[s][h][i].item<float>(), x2 = x[s][h][i + half].item<float>();
        EXPECT_NEAR(got[s][h][i].item<float>(), x1 * c - x2 * sn, 1e-5);
        EXPECT_NEAR(got[s][h][i + half].item<float>(), x1 * sn + x2 * c, 1e-5);
      }
      for (int64_t i = 2 * half; i < d; ++i) EXPECT_EQ(got[s][h][i].item<float>(), x[s][h][i].item<float>());
    }
  }
}

// The CUDA kernels behind these ops (kernels/cuda, reached through the same functions on CUDA
// tensors of a CUDA LibTorch) against their CPU twins, in the DiT's own layouts.
TEST(FusedOpsTest, CudaKernelsMatchTheirCpuTwins) {
  if (!at::hasCUDA()) {
    GTEST_SKIP() << "no CUDA: this LibTorch was built without CUDA or no GPU is visible; the CPU twins are "
                    "checked above and magi-cuda-check compares the raw kernels on a GPU";
  }
  if (!HaveCudaKernels()) GTEST_SKIP() << "this build has a CUDA LibTorch but did not compile kernels/cuda";
  const at::Device cuda(at::kCUDA, 0);
  at::manual_seed(3);
  // Rotary as the DiT calls it: x [S, N, heads, d], tables [S, 1, 1, half], partial rotary.
  const int64_t S = 33, N = 2, H = 5, d = 64, half = 24;
  at::Tensor x = at::randn({S, N, H, d}), ang = at::randn({S, 1, 1, half});
  at::Tensor rot_cpu = ApplyRotary(x, at::sin(ang), at::cos(ang));
  at::Tensor rot_gpu = ApplyRotary(x.to(cuda), at::sin(ang).to(cuda), at::cos(ang).to(cuda));
  EXPECT_TRUE(rot_gpu.is_cuda());
  EXPECT_LT((rot_gpu.cpu() - rot_cpu).abs().max().item<float>(), 1e-5);

  const int64_t rows = 41, dim = 320;
  at::Tensor h = at::randn({rows, dim}), gate = at::tanh(at::randn({rows, dim})), w = at::randn({dim}) * 0.1,
             b = at::randn({dim}) * 0.1, res = at::randn({rows, dim});
  at::Tensor ln_cpu = LayerNorm1p(h, w, b, 1e-6);
  at::Tensor ln_gpu = LayerNorm1p(h.to(cuda), w.to(cuda), b.to(cuda), 1e-6);
  EXPECT_LT((ln_gpu.cpu() - ln_cpu).abs().max().item<float>(), 1e-4);
  for (at::ScalarType out : {at::kFloat, at::kBFloat16}) {
    at::Tensor g_cpu = GatePostNormResidual(h, gate, w, b, res, 1e-6, out);
    at::Tensor g_gpu = GatePostNormResidual(h.to(cuda), gate.to(cuda), w.to(cuda), b.to(cuda), res.to(cuda), 1e-6, out);
    EXPECT_EQ(g_gpu.scalar_type(), out);
    const double tol = out == at::kFloat ? 1e-4 : 1e-2 * g_cpu.to(at::kFloat).abs().max().item<double>();
    EXPECT_LT((g_gpu.cpu().to(at::kFloat) - g_cpu.to(at::kFloat)).abs().max().item<double>(), tol) << "out " << out;
  }
}

TEST(RangeAttentionTest, MatchesDenseSoftmaxPerRangeWithGqa) {
  at::manual_seed(3);
  const int64_t S = 20, Hq = 4, G = 2, d = 8;
  at::Tensor q = at::randn({S, Hq, d}), k = at::randn({S, G, d}), v = at::randn({S, G, d});
  std::vector<TokenRange> qr = {{0, 5}, {5, 12}, {12, 20}}, kr = {{0, 5}, {0, 12}, {3, 3}};
  at::Tensor got = RangeAttention(q, k, v, qr, kr, 0.3);
  for (size_t i = 0; i < qr.size(); ++i) {
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t g = h / (Hq / G);
      at::Tensor qs = q.slice(0, qr[i].first, qr[i].second).select(1, h);
      at::Tensor out = got.slice(0, qr[i].first, qr[i].second).select(1, h);
      if (kr[i].second == kr[i].first) {
        EXPECT_EQ(out.abs().max().item<float>(), 0.0f);  // empty key range -> zeros
        continue;
      }
      at::Tensor ks = k.slice(0, kr[i].first, kr[i].second).select(1, g);
      at::Tensor vs = v.slice(0, kr[i].first, kr[i].second).select(1, g);
      at::Tensor want = at::softmax(at::matmul(qs, ks.t()) * 0.3, -1).matmul(vs);
      EXPECT_LT((out - want).abs().max().item<float>(), 1e-5);
    }
  }
}

}  // namespace
}  // namespace magi
