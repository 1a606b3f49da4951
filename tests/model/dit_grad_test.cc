// The DiT forward under autograd (training, issue #17): with its weights made trainable in
// place through NamedWeights(), one forward + backward gives every weight a finite gradient,
// and the gradient agrees with central finite differences of the loss along random
// directions (the fused attention kernel, which has no backward, gives way to its unfused
// ATen twin while autograd records). NamedWeights names exactly the checkpoint's keys.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include "tests/model/small_dit_config.h"
#include "worker/model/checkpoint.h"
#include "worker/model/config.h"
#include "worker/model/dit.h"
#include "worker/model/random_checkpoint.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

// Three chunks, block-causal (chunk c sees chunks 0..c), as a training window.
DitForwardArgs Window(const ModelConfig& m) {
  const int chunks = 3;
  const int64_t M = 2 * 4 * 4;  // tokens per chunk: 2 latent frames of 8x8 in 2x2 patches
  at::manual_seed(7);
  DitForwardArgs a;
  a.x = at::randn({1, m.latent_channels(), 2 * chunks, 8, 8});
  a.t = at::tensor(std::vector<float>{0.2f, 0.5f, 0.8f}).reshape({1, 3});
  a.y = at::randn({chunks, 1, m.caption_max_length, m.caption_channels});
  a.xattn_mask = at::zeros({chunks, 1, m.caption_max_length}, at::kLong);
  for (int c = 0; c < chunks; ++c) a.xattn_mask[c][0].narrow(0, 0, 6 + 2 * c).fill_(1);
  a.caption_dropout_mask = at::zeros({1}, at::kBool);
  a.kv_range = at::zeros({chunks, 2}, at::kInt);
  for (int c = 0; c < chunks; ++c) a.kv_range[c][1] = (c + 1) * M;
  a.denoising_range_num = chunks;
  a.num_steps = 8;
  return a;
}

class DitGradTest : public ::testing::TestWithParam<bool> {};

TEST_P(DitGradTest, EveryWeightGetsAGradientThatMatchesFiniteDifferences) {
  const ModelConfig m = SmallDitConfig(GetParam(), /*layers=*/2);
  const fs::path path = fs::temp_directory_path() / ("magi_dit_grad_" + std::to_string(::getpid()) + ".safetensors");
  ASSERT_TRUE(WriteRandomDitCheckpoint(m, path.string()).ok());
  auto ckpt = Checkpoint::Open(path.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto dit = DitModel::Load(m, **ckpt, {});
  ASSERT_TRUE(dit.ok()) << dit.status();
  auto weights = (*dit)->NamedWeights();
  ASSERT_TRUE(weights.ok()) << weights.status();
  // Exactly the checkpoint's keys (the null caption rows ride with the DiT as in the release).
  std::set<std::string> keys;
  for (const auto& [k, t] : *weights) keys.insert(k);
  std::set<std::string> stored;
  for (const std::string& k : (*ckpt)->Keys()) stored.insert(k);
  EXPECT_EQ(keys, stored);

  for (auto& [k, t] : *weights) {
    t.set_data(t.detach().clone());
    t.requires_grad_(true);
  }
  const DitForwardArgs a = Window(m);
  at::manual_seed(11);
  at::Tensor r;
  auto loss_of = [&]() -> at::Tensor {
    auto out = (*dit)->Forward(a);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!r.defined()) r = at::randn(out->sizes());
    return (*out * r).mean();
  };
  at::Tensor loss = loss_of();
  loss.backward();
  int zero = 0;
  for (const auto& [k, t] : *weights) {
    ASSERT_TRUE(t.grad().defined()) << k << " got no gradient";
    EXPECT_TRUE(at::isfinite(t.grad()).all().item<bool>()) << k;
    if (t.grad().abs().max().item<double>() == 0) {
      ++zero;
      // Only the null caption rows may be unused here (no caption dropout in this window).
      EXPECT_NE(k.find("null_caption"), std::string::npos) << k << " has a zero gradient";
    }
  }
  EXPECT_LE(zero, 1);

  // Central differences along a random unit direction of a few weights.
  at::NoGradGuard no_grad;
  for (const std::string k : {"x_embedder.weight", "videodit_blocks.layers.1.self_attention.linear_qkv.k.weight",
                              "videodit_blocks.layers.0.mlp.linear_fc1.weight", "t_embedder.mlp.0.weight",
                              "y_embedder.y_proj_xattn.0.weight", "final_linear.linear.weight"}) {
    at::Tensor w = weights->at(k);
    at::Tensor d = at::randn(w.sizes());
    d /= d.norm();
    const double h = 1e-2;
    const double analytic = (w.grad() * d).sum().item<double>();
    w.add_(d, h);
    const double up = loss_of().item<double>();
    w.add_(d, -2 * h);
    const double down = loss_of().item<double>();
    w.add_(d, h);
    const double numeric = (up - down) / (2 * h);
    std::printf("%s: analytic %.6g, numeric %.6g\n", k.c_str(), analytic, numeric);
    EXPECT_NEAR(numeric, analytic, 0.05 * std::abs(analytic) + 2e-5) << k;
  }
  dit->reset();
  ckpt->reset();
  fs::remove(path);
}

INSTANTIATE_TEST_SUITE_P(GeluAndGlu, DitGradTest, ::testing::Values(false, true));

}  // namespace
}  // namespace magi
