// VAE training on the synthetic world (tools/train_tiny/train_vae.h): a few Adam steps on the
// tiny set's VAE lower the held-out reconstruction error; the weights written as a VAE folder
// load through the real loader and compute exactly what the trained model computes; the same
// seed trains the same bytes, on any number of workers; bad options are refused naming the option.
#include "tools/train_tiny/train_vae.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "physics/world.h"
#include "worker/runner/tiny_model.h"
#include "worker/vae/random_vae_checkpoint.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

class TrainVaeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("magi_train_vae_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    ASSERT_TRUE(WriteRandomVaeFolder(TinyVaeConfig(), (dir_ / "start").string(), 3).ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ViTVae> Load(const fs::path& folder, VaeCompute compute = VaeCompute::kFloat32) {
    ViTVae::Options o;
    o.compute = compute;
    auto vae = ViTVae::LoadFolder(folder.string(), o);
    EXPECT_TRUE(vae.ok()) << vae.status();
    return vae.ok() ? std::move(*vae) : nullptr;
  }

  static VaeTrainOptions Small(int steps) {
    VaeTrainOptions o;
    o.steps = steps;
    o.batch = 4;
    o.frames = 8;
    o.size = 32;
    o.learning_rate = 2e-3;
    o.heldout_scenes = 4;
    return o;
  }

  fs::path dir_;
};

TEST_F(TrainVaeTest, StepsLowerTheHeldOutErrorAndTheWrittenFolderComputesTheSame) {
  std::unique_ptr<ViTVae> vae = Load(dir_ / "start");
  ASSERT_NE(vae, nullptr);
  int calls = 0;
  double first_loss = 0, last_loss = 0;
  VaeTrainOptions o = Small(40);
  o.on_step = [&](int step, double loss, double) {
    ++calls;
    EXPECT_EQ(step, calls);
    if (step == 1) first_loss = loss;
    last_loss = loss;
  };
  auto trained = TrainVae(*vae, o);
  ASSERT_TRUE(trained.ok()) << trained.status();
  std::printf("held-out MSE %.5f -> %.5f; loss %.5f -> %.5f in %.1f s\n", trained->heldout_mse_before,
              trained->heldout_mse_after, first_loss, last_loss, trained->seconds);
  EXPECT_EQ(calls, 40);
  // Measured 0.329 -> 0.153 held out and 1.90 -> 0.62 in loss (32 px, 40 steps, AMD Zen 5);
  // an optimiser that does not step stays at 1x.
  EXPECT_LT(trained->heldout_mse_after, 0.7 * trained->heldout_mse_before);
  EXPECT_LT(last_loss, 0.6 * first_loss);

  std::map<std::string, at::Tensor> weights;
  for (const auto& [name, t] : vae->NamedWeights()) {
    EXPECT_FALSE(t.requires_grad()) << name << " is still trainable after training";
    weights[name] = t;
  }
  ASSERT_TRUE(WriteVaeFolder(vae->config(), weights, (dir_ / "trained").string()).ok());
  std::unique_ptr<ViTVae> reloaded = Load(dir_ / "trained");
  ASSERT_NE(reloaded, nullptr);
  auto clips = WorldClips(77, 2, 8, 32);
  ASSERT_TRUE(clips.ok()) << clips.status();
  auto z1 = vae->EncodeTile(*clips), z2 = reloaded->EncodeTile(*clips);
  ASSERT_TRUE(z1.ok() && z2.ok());
  EXPECT_TRUE(at::equal(*z1, *z2));
  auto x1 = vae->DecodeTile(*z1), x2 = reloaded->DecodeTile(*z2);
  ASSERT_TRUE(x1.ok() && x2.ok());
  EXPECT_TRUE(at::equal(*x1, *x2));
  auto mse = ReconstructionMse(*reloaded, *clips);
  ASSERT_TRUE(mse.ok());
  EXPECT_LT(*mse, 0.7 * trained->heldout_mse_before);
}

// The latent colour share: recolouring moves a scene's latent, and TrainVae reports the share
// of its start weights as LatentColourShare computes it; a count below 1 is refused.
// The held-out colour measures (the latent colour share and the object colour error) are
// reported before and after training, and refuse zero scenes.
TEST_F(TrainVaeTest, ColourMeasuresAreReportedBeforeAndAfter) {
  std::unique_ptr<ViTVae> vae = Load(dir_ / "start");
  ASSERT_NE(vae, nullptr);
  auto share = LatentColourShare(*vae, 4, 8, 32);
  ASSERT_TRUE(share.ok()) << share.status();
  auto error = ObjectColourError(*vae, 4, 8, 32);
  ASSERT_TRUE(error.ok()) << error.status();
  EXPECT_GT(*share, 0.0);
  EXPECT_TRUE(std::isfinite(*share));
  EXPECT_GT(*error, 0.0);
  auto trained = TrainVae(*vae, Small(1));
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_EQ(trained->colour_share_before, *share);
  EXPECT_NE(trained->colour_share_after, *share);
  EXPECT_EQ(trained->colour_error_before, *error);
  EXPECT_NE(trained->colour_error_after, *error);
  EXPECT_FALSE(LatentColourShare(*vae, 0, 8, 32).ok());
  EXPECT_FALSE(ObjectColourError(*vae, 0, 8, 32).ok());
}

// The colour anchor keeps the objects' colour in the latent: after the same steps the latent
// colour share is well above that of a run without it (measured 0.56 against 0.13 at 64 px
// and 150 steps, recipe batch, AMD EPYC), at a reconstruction error of the same order.
TEST_F(TrainVaeTest, ColourAnchorKeepsColourInTheLatent) {
  VaeTrainResult runs[2];
  for (int i = 0; i < 2; ++i) {
    std::unique_ptr<ViTVae> vae = Load(dir_ / "start");
    ASSERT_NE(vae, nullptr);
    VaeTrainOptions o = Small(40);
    o.colour_anchor = i == 0 ? 0.0 : 0.1;
    auto r = TrainVae(*vae, o);
    ASSERT_TRUE(r.ok()) << r.status();
    runs[i] = *r;
  }
  std::printf("colour share after 40 steps: %.4f plain, %.4f anchored; held-out MSE %.4f, %.4f\n",
              runs[0].colour_share_after, runs[1].colour_share_after, runs[0].heldout_mse_after,
              runs[1].heldout_mse_after);
  EXPECT_GT(runs[1].colour_share_after, 1.3 * runs[0].colour_share_after);  // 0.49 vs 0.28 measured (32 px)
  EXPECT_LT(runs[1].heldout_mse_after, 2.0 * runs[0].heldout_mse_after);
}

// The colour distance is 0 for the world's own frames, and for frames whose objects are all
// painted one colour it is the mean distance of that colour from the objects' palette colours,
// over the objects showing at least 8 pixels in a frame (counted here from the labels).
TEST(ObjectColourDistanceTest, ZeroForTheTruthAndThePaintedColoursDistanceOtherwise) {
  const uint64_t first = 777;
  const int n = 3, frames = 8, size = 32;
  auto clips = WorldClips(first, n, frames, size, 0);
  ASSERT_TRUE(clips.ok()) << clips.status();
  std::vector<physics::Scene> scenes;
  for (int i = 0; i < n; ++i) scenes.push_back(physics::MakeScene(first + static_cast<uint64_t>(i)));
  auto truth = ObjectColourDistance(scenes, *clips);
  ASSERT_TRUE(truth.ok()) << truth.status();
  EXPECT_LT(*truth, 0.01);

  const double paint[3] = {150, 100, 90};
  at::Tensor painted = clips->clone();
  auto px = painted.accessor<float, 5>();
  double want = 0;
  int objects = 0;
  for (int i = 0; i < n; ++i) {
    auto rendered = physics::RenderScene(scenes[static_cast<size_t>(i)], size, frames);
    ASSERT_TRUE(rendered.ok()) << rendered.status();
    for (int f = 0; f < frames; ++f) {
      const std::vector<uint8_t>& label = (*rendered)[static_cast<size_t>(f)].label;
      for (size_t k = 0; k < scenes[static_cast<size_t>(i)].objects.size(); ++k) {
        const int count = static_cast<int>(std::count(label.begin(), label.end(), static_cast<uint8_t>(k + 1)));
        if (count < 8) continue;
        const physics::Colour& c = physics::Palette()[static_cast<size_t>(scenes[static_cast<size_t>(i)].objects[k].colour)];
        want += std::sqrt(std::pow(c.r - paint[0], 2) + std::pow(c.g - paint[1], 2) + std::pow(c.b - paint[2], 2));
        ++objects;
      }
      for (int p = 0; p < size * size; ++p) {
        if (label[static_cast<size_t>(p)] == 0) continue;
        for (int ch = 0; ch < 3; ++ch) px[i][ch][f][p / size][p % size] = static_cast<float>(paint[ch] / 127.5 - 1.0);
      }
    }
  }
  ASSERT_GT(objects, 0);
  auto d = ObjectColourDistance(scenes, painted);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_NEAR(*d, want / objects, 1e-3);
  EXPECT_GT(*d, 50.0);
  EXPECT_FALSE(ObjectColourDistance(scenes, clips->narrow(0, 0, 2)).ok());
  EXPECT_FALSE(ObjectColourDistance({}, *clips).ok());
}

// Decoding the posterior mean trains other weights than decoding a sample, from the same start
// and the same clips (the held-out error before training is the same figure).
TEST_F(TrainVaeTest, PosteriorMeanTrainsOtherWeights) {
  std::unique_ptr<ViTVae> sampled = Load(dir_ / "start");
  std::unique_ptr<ViTVae> mean = Load(dir_ / "start");
  ASSERT_TRUE(sampled != nullptr && mean != nullptr);
  VaeTrainOptions o = Small(3);
  auto a = TrainVae(*sampled, o);
  o.posterior_mean = true;
  auto b = TrainVae(*mean, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->heldout_mse_before, b->heldout_mse_before);
  const auto wa = sampled->NamedWeights(), wb = mean->NamedWeights();
  int differ = 0;
  for (const auto& [name, t] : wa) differ += at::equal(t, wb.at(name)) ? 0 : 1;
  EXPECT_GT(differ, static_cast<int>(wa.size()) / 2);
}

TEST_F(TrainVaeTest, TheSameSeedTrainsTheSameWeights) {
  std::map<std::string, at::Tensor> runs[2];
  for (auto& run : runs) {
    std::unique_ptr<ViTVae> vae = Load(dir_ / "start");
    ASSERT_NE(vae, nullptr);
    ASSERT_TRUE(TrainVae(*vae, Small(3)).ok());
    run = vae->NamedWeights();
  }
  ASSERT_EQ(runs[0].size(), runs[1].size());
  int changed = 0;
  std::unique_ptr<ViTVae> start = Load(dir_ / "start");
  const auto initial = start->NamedWeights();
  for (const auto& [name, t] : runs[0]) {
    EXPECT_TRUE(at::equal(t, runs[1].at(name))) << name;
    changed += at::equal(t, initial.at(name)) ? 0 : 1;
  }
  EXPECT_EQ(changed, static_cast<int>(initial.size())) << "some weights were not trained";
}

// Clips computed on 2 workers train bit-equal weights to 1 worker, with a batch the workers
// do not divide evenly and the latent-noise draws in play.
TEST_F(TrainVaeTest, AnyWorkerCountTrainsTheSameWeights) {
  std::map<std::string, at::Tensor> runs[2];
  for (int workers = 1; workers <= 2; ++workers) {
    std::unique_ptr<ViTVae> vae = Load(dir_ / "start");
    ASSERT_NE(vae, nullptr);
    VaeTrainOptions o = Small(2);
    o.batch = 3;
    o.latent_noise = 0.3;
    o.workers = workers;
    ASSERT_TRUE(TrainVae(*vae, o).ok());
    runs[workers - 1] = vae->NamedWeights();
  }
  std::unique_ptr<ViTVae> start = Load(dir_ / "start");
  ASSERT_NE(start, nullptr);
  const auto initial = start->NamedWeights();
  int changed = 0;
  for (const auto& [name, t] : runs[0]) {
    EXPECT_TRUE(at::equal(t, runs[1].at(name))) << name << " differs between 1 and 2 workers";
    changed += at::equal(t, initial.at(name)) ? 0 : 1;
  }
  EXPECT_EQ(changed, static_cast<int>(initial.size())) << "some weights were not trained";
}

// decoder_only trains every decoder weight and leaves every encoder weight bit-equal, so the
// latents a DiT was trained on keep their values; latent noise changes what is trained.
TEST_F(TrainVaeTest, DecoderOnlyLeavesTheEncoderAsItWas) {
  std::unique_ptr<ViTVae> start = Load(dir_ / "start");
  ASSERT_NE(start, nullptr);
  const auto initial = start->NamedWeights();
  std::map<std::string, at::Tensor> runs[2];
  for (int i = 0; i < 2; ++i) {
    std::unique_ptr<ViTVae> vae = Load(dir_ / "start");
    ASSERT_NE(vae, nullptr);
    VaeTrainOptions o = Small(3);
    o.decoder_only = true;
    o.latent_noise = i == 0 ? 0.0 : 0.5;
    ASSERT_TRUE(TrainVae(*vae, o).ok());
    runs[i] = vae->NamedWeights();
  }
  int encoder = 0, decoder = 0, noise_changed = 0;
  for (const auto& [name, t] : runs[0]) {
    if (name.rfind("encoder.", 0) == 0) {
      ++encoder;
      EXPECT_TRUE(at::equal(t, initial.at(name))) << name << " changed in a decoder-only run";
      EXPECT_TRUE(at::equal(runs[1].at(name), initial.at(name))) << name << " changed in a decoder-only run";
    } else {
      ++decoder;
      EXPECT_FALSE(at::equal(t, initial.at(name))) << name << " was not trained";
      noise_changed += at::equal(t, runs[1].at(name)) ? 0 : 1;
    }
  }
  EXPECT_GT(encoder, 0);
  EXPECT_GT(decoder, 0);
  EXPECT_EQ(noise_changed, decoder) << "latent noise did not change what the decoder learnt";
}

// The step-1 loss of a VAE whose latent is scaled by k = 1/8 (the mean rows of the encoder's last
// layer times k, the log-variance rows' bias plus 2 ln k so the posterior's noise scales too,
// and the decoder's input projection over k: the same function when no noise is added).
// Relative latent noise scales with the latent, so the loss stays; absolute noise does not.
TEST_F(TrainVaeTest, RelativeLatentNoiseCannotBeOutgrownByScalingTheLatent) {
  auto step1 = [&](double k, bool relative) {
    std::unique_ptr<ViTVae> vae = Load(dir_ / "start");
    EXPECT_NE(vae, nullptr);
    if (vae == nullptr) return 0.0;
    const int64_t z = vae->config().z_chans;
    std::map<std::string, at::Tensor> w = vae->NamedWeights();
    w.at("encoder.last_layer.weight").slice(0, 0, z).mul_(k);
    w.at("encoder.last_layer.bias").slice(0, 0, z).mul_(k);
    w.at("encoder.last_layer.bias").slice(0, z, 2 * z).add_(2.0 * std::log(k));
    w.at("decoder.proj_in.weight").div_(k);
    VaeTrainOptions o = Small(1);
    o.kl_weight = 0;
    o.latent_noise = 0.5;
    o.latent_noise_relative = relative;
    double loss = 0;
    o.on_step = [&](int, double l, double) { loss = l; };
    auto r = TrainVae(*vae, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return loss;
  };
  const double rel1 = step1(1, true), rel8 = step1(0.125, true);
  const double abs1 = step1(1, false), abs8 = step1(0.125, false);
  EXPECT_NEAR(rel8, rel1, 1e-4 * rel1) << "relative noise changed with the latent's scale";
  std::printf("step-1 loss: relative %.7f at k 1, %.7f at k 1/8; absolute %.7f, %.7f\n", rel1, rel8, abs1, abs8);
  EXPECT_GT(std::fabs(abs8 - abs1), 1e-3 * abs1) << "absolute noise did not change with the latent's scale";
}

TEST_F(TrainVaeTest, BadOptionsAreRefusedNamingTheOption) {
  std::unique_ptr<ViTVae> vae = Load(dir_ / "start");
  ASSERT_NE(vae, nullptr);
  VaeTrainOptions o = Small(1);
  o.frames = 10;
  auto r = TrainVae(*vae, o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("frames must be a multiple of the VAE's patch_length 4"), std::string::npos)
      << r.status();
  o = Small(1);
  o.size = 40;
  r = TrainVae(*vae, o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("size"), std::string::npos) << r.status();
  o = Small(1);
  o.learning_rate = 0;
  r = TrainVae(*vae, o);
  EXPECT_NE(r.status().message().find("learning_rate must be in"), std::string::npos) << r.status();
  o = Small(1);
  o.latent_noise = -0.1;
  r = TrainVae(*vae, o);
  EXPECT_NE(r.status().message().find("latent_noise must be in [0, 10]"), std::string::npos) << r.status();
  o = Small(1);
  o.colour_anchor = -1;
  r = TrainVae(*vae, o);
  EXPECT_NE(r.status().message().find("colour_anchor must be in [0, 100]"), std::string::npos) << r.status();
  o = Small(1);
  o.latent_noise_relative = true;
  r = TrainVae(*vae, o);
  EXPECT_NE(r.status().message().find("latent_noise_relative scales latent_noise, which is 0"), std::string::npos)
      << r.status();
  o = Small(1);
  o.workers = 0;
  r = TrainVae(*vae, o);
  EXPECT_NE(r.status().message().find("workers must be in [1, 256]"), std::string::npos) << r.status();
  std::unique_ptr<ViTVae> bf16 = Load(dir_ / "start", VaeCompute::kBFloat16);
  ASSERT_NE(bf16, nullptr);
  r = TrainVae(*bf16, Small(1));
  EXPECT_NE(r.status().message().find("kFloat32"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace magi
