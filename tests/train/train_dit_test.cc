// DiT training on the synthetic world (tools/train_tiny/train_dit.h): on a tiny set at 32 x 32,
// a few Adam steps lower the held-out velocity loss over every step of the engine's t2v and
// v2v plans; the replayed forward of every plan step equals the engine's own DiT call (window
// chunks), for t2v and v2v; the written weights load through the real loader and compute what the trained
// model computes; bad options are refused naming the option.
#include "tools/train_tiny/train_dit.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <map>
#include <utility>
#include <memory>
#include <string>

#include "physics/world.h"
#include "worker/engine/ar_engine.h"
#include "worker/engine/denoiser.h"
#include "worker/model/checkpoint.h"
#include "worker/model/config.h"
#include "worker/model/dit.h"
#include "worker/runner/model_job_runner.h"
#include "worker/runner/tiny_model.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

class TrainDitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("magi_train_dit_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    ASSERT_TRUE(WriteTinyModelSet((dir_ / "set").string()).ok());
    auto c = LoadMagiConfig((dir_ / "set" / "config.json").string());
    ASSERT_TRUE(c.ok()) << c.status();
    c->runtime.video_size_h = c->runtime.video_size_w = 32;
    std::ofstream((dir_ / "set" / "config.json")) << MagiConfigToJson(*c);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static DitTrainOptions Small(int steps) {
    DitTrainOptions o;
    o.steps = steps;
    o.batch = 2;
    o.size = 32;
    o.chunks = 2;
    o.scenes = 8;
    o.heldout_scenes = 2;
    o.learning_rate = 2e-3;
    return o;
  }

  // The tiny set trained afresh with `o`: its result and its DiT weights by name.
  struct Trained {
    bool ok = false;
    DitTrainResult result;
    std::map<std::string, at::Tensor> weights;
  };
  Trained Train(const DitTrainOptions& o) {
    Trained out;
    auto runner = ModelJobRunner::Load((dir_ / "set").string());
    EXPECT_TRUE(runner.ok()) << runner.status();
    if (!runner.ok()) return out;
    auto r = TrainDit(**runner, o);
    EXPECT_TRUE(r.ok()) << r.status();
    auto weights = (*runner)->dit().NamedWeights();
    EXPECT_TRUE(weights.ok()) << weights.status();
    if (!r.ok() || !weights.ok()) return out;
    out.result = *r;
    for (const auto& [name, t] : *weights) out.weights[name] = t.detach().clone();
    out.ok = true;
    return out;
  }

  // The set's DiT weights before training, by name.
  std::map<std::string, at::Tensor> InitialWeights() {
    auto start = ModelJobRunner::Load((dir_ / "set").string());
    EXPECT_TRUE(start.ok()) << start.status();
    if (!start.ok()) return {};
    auto w = (*start)->dit().NamedWeights();
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *w : std::map<std::string, at::Tensor>{};
  }

  // An option that changes only what is trained: from the same start and draws, the held-out
  // loss before training is the same figure, and most trained weights differ from the plain
  // run's.
  // How many of a's weights differ from b's (by name).
  static int Differing(const Trained& a, const Trained& b) {
    int differ = 0;
    for (const auto& [name, t] : a.weights) differ += at::equal(t, b.weights.at(name)) ? 0 : 1;
    return differ;
  }

  void ExpectRetrains(const DitTrainOptions& changed) {
    Trained plain = Train(Small(changed.steps));
    Trained other = Train(changed);
    ASSERT_TRUE(plain.ok && other.ok);
    EXPECT_EQ(plain.result.heldout_loss_before, other.result.heldout_loss_before);
    EXPECT_GT(Differing(plain, other), static_cast<int>(plain.weights.size()) / 2);
  }

  fs::path dir_;
};

TEST_F(TrainDitTest, StepsLowerTheHeldOutLossAndTheWrittenWeightsComputeTheSame) {
  auto runner = ModelJobRunner::Load((dir_ / "set").string());
  ASSERT_TRUE(runner.ok()) << runner.status();
  int calls = 0;
  DitTrainOptions o = Small(30);
  o.on_step = [&](int step, double loss, double norm) {
    ++calls;
    EXPECT_EQ(step, calls);
    EXPECT_TRUE(std::isfinite(loss) && std::isfinite(norm));
  };
  auto r = TrainDit(**runner, o);
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("held-out loss %.5f -> %.5f, latent std %.3f, %lld parameters, %d plan steps, %.1f s\n",
              r->heldout_loss_before, r->heldout_loss_after, r->latent_std, static_cast<long long>(r->parameters),
              r->plan_steps, r->seconds);
  EXPECT_EQ(calls, 30);
  // 2 chunks, window 2, 8 steps: t2v 3 stages x 4 steps, v2v 1 stage x 4 + ... every step counted.
  EXPECT_GT(r->plan_steps, 8);
  EXPECT_GT(r->parameters, 100000);
  EXPECT_LT(r->heldout_loss_after, 0.8 * r->heldout_loss_before);
  auto weights = (*runner)->dit().NamedWeights();
  ASSERT_TRUE(weights.ok()) << weights.status();
  for (const auto& [name, t] : *weights) {
    EXPECT_FALSE(t.requires_grad()) << name << " is still trainable after training";
  }

  // The written checkpoint, loaded by the real loader, computes what the trained model does.
  const fs::path written = dir_ / "model.safetensors";
  ASSERT_TRUE(WriteDitWeights(**runner, written.string()).ok());
  auto ckpt = Checkpoint::Open(written.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  DitModel::Options mo;
  mo.distill = (*runner)->config().engine.distill;
  auto reloaded = DitModel::Load((*runner)->config().model, **ckpt, mo);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  const ModelConfig& m = (*runner)->config().model;
  DitForwardArgs a;
  a.x = at::randn({1, m.latent_channels(), 6, 4, 4});
  a.t = at::full({1, 1}, 0.4f);
  a.y = at::randn({1, 1, m.caption_max_length, m.caption_channels});
  a.xattn_mask = at::ones({1, 1, m.caption_max_length});
  a.caption_dropout_mask = at::zeros({1}, at::kBool);
  a.kv_range = at::tensor({0, 24}, at::kLong).reshape({1, 2});
  a.num_steps = 8;
  auto before = (*runner)->dit().Forward(a);
  auto after = (*reloaded)->Forward(a);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_TRUE(at::equal(*before, *after));
}

// Training replays the engine's forwards without a KV cache (ReplayStepArgs): with the clean
// chunks the engine produced and the window inputs it fed, every step's window outputs equal
// the engine's DiT call, for t2v and for v2v (prefix pass first).
TEST_F(TrainDitTest, ReplayedStepsEqualTheEnginesForwards) {
  auto runner = ModelJobRunner::Load((dir_ / "set").string());
  ASSERT_TRUE(runner.ok()) << runner.status();
  const MagiConfig& config = (*runner)->config();
  const ModelConfig& m = config.model;
  const int cw = config.runtime.chunk_width;
  const int64_t ctn = cw * 2 * 2;  // 32 x 32: 4 x 4 latents, patch 2
  auto ckpt = Checkpoint::Open((dir_ / "set" / "dit" / "model.safetensors").string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto null_caption = LoadNullCaption(**ckpt, m);
  ASSERT_TRUE(null_caption.ok()) << null_caption.status();
  auto prompt = (*runner)->EncodePrompt("a red ball falls and bounces", 0);
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  DitDenoiser denoiser((*runner)->dit());
  for (const bool v2v : {false, true}) {
    SCOPED_TRACE(v2v ? "v2v" : "t2v");
    auto engine = ArEngine::Create(config, denoiser);
    ASSERT_TRUE(engine.ok()) << engine.status();
    ArRequest req;
    req.prompts = {*prompt};
    req.null_caption = *null_caption;
    req.seed = 5;
    req.num_frames = v2v ? 48 : 72;  // 3 latent chunks either way
    at::Tensor prefix;
    if (v2v) {
      prefix = at::randn({1, m.latent_channels(), cw, 4, 4});
      req.prefix = prefix;
    }
    auto plan = (*engine)->Plan(req);
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_EQ(plan->options.chunk_num, 3);
    ChunkCaptions captions;
    std::map<int, std::pair<at::Tensor, at::Tensor>> calls;  // dispatch -> (x, out) of call 0
    GenerateCallbacks cb;
    cb.on_captions = [&](const ChunkCaptions& c) { captions = c; };
    cb.on_forward = [&](int dispatch, int call, const DitForwardArgs& a, const at::Tensor& out) {
      if (call == 0) calls[dispatch] = {a.x.clone(), out.clone()};
    };
    auto result = (*engine)->Generate(req, cb);
    ASSERT_TRUE(result.ok()) << result.status();
    const at::Tensor clean = v2v ? at::cat({prefix, result->final_latents}, 2) : result->final_latents;
    ASSERT_EQ(clean.size(2), 3 * cw);
    const int first_dispatch = plan->has_prefix_pass ? 1 : 0;
    int compared = 0;
    for (int s = 0; s < plan->num_forward_steps(); ++s) {
      const PlannedStep& ps = plan->steps[static_cast<size_t>(s)];
      const auto& [x_in, out] = calls.at(first_dispatch + s);
      at::Tensor latents = clean.clone();
      for (const PlannedChunk& pc : ps.chunks) {
        if (pc.extra) continue;
        latents.narrow(2, pc.chunk * cw, cw).copy_(x_in.narrow(2, (pc.chunk - ps.slice_point) * cw, cw));
      }
      auto args = ReplayStepArgs(config, *plan, s, latents, captions, ctn);
      ASSERT_TRUE(args.ok()) << args.status();
      EXPECT_FALSE(args->caption_dropout_mask.item<bool>());
      // The guidance's context-only pass: every row the null caption, the dropout flag set.
      auto null_args = ReplayStepArgs(config, *plan, s, latents, captions, ctn, /*null_text=*/true);
      ASSERT_TRUE(null_args.ok()) << null_args.status();
      EXPECT_TRUE(null_args->caption_dropout_mask.item<bool>());
      for (int64_t r = 0; r < null_args->y.size(0); ++r) {
        EXPECT_TRUE(at::equal(null_args->y[r][0], captions.null_row.to(at::kFloat))) << "step " << s << " row " << r;
      }
      auto replay = (*runner)->dit().Forward(*args);
      ASSERT_TRUE(replay.ok()) << replay.status();
      for (const PlannedChunk& pc : ps.chunks) {
        if (pc.extra) continue;
        const at::Tensor mine = replay->narrow(2, pc.chunk * cw, cw);
        const at::Tensor theirs = out.narrow(2, (pc.chunk - ps.slice_point) * cw, cw);
        const double diff = (mine - theirs).abs().max().item<double>();
        EXPECT_LT(diff, 1e-4 * std::max(1.0, theirs.abs().max().item<double>()))
            << "step " << s << " chunk " << pc.chunk << ": " << DescribePlan(*plan);
        ++compared;
      }
    }
    EXPECT_GT(compared, plan->num_forward_steps());  // windows of two chunks were compared
  }
}

TEST_F(TrainDitTest, BadOptionsAreRefusedNamingTheOption) {
  auto runner = ModelJobRunner::Load((dir_ / "set").string());
  ASSERT_TRUE(runner.ok()) << runner.status();
  DitTrainOptions o = Small(1);
  o.size = 64;  // the set runs at 32
  auto r = TrainDit(**runner, o);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status()));
  EXPECT_NE(r.status().message().find("video_size_h"), std::string::npos) << r.status();
  o = Small(1);
  o.chunks = 1;
  r = TrainDit(**runner, o);
  EXPECT_NE(r.status().message().find("chunks must be in [2, 16]"), std::string::npos) << r.status();
  o = Small(1);
  o.v2v_fraction = 1.5;
  r = TrainDit(**runner, o);
  EXPECT_NE(r.status().message().find("v2v_fraction"), std::string::npos) << r.status();
  o = Small(1);
  o.late_weight = -1;
  r = TrainDit(**runner, o);
  EXPECT_NE(r.status().message().find("late_weight must be in [0, 1000]"), std::string::npos) << r.status();
  o = Small(1);
  o.workers = 0;
  r = TrainDit(**runner, o);
  EXPECT_NE(r.status().message().find("workers must be in [1, 256]"), std::string::npos) << r.status();
  o = Small(1);
  o.caption_dropout = 1.5;
  r = TrainDit(**runner, o);
  EXPECT_NE(r.status().message().find("caption_dropout must be in [0, 1]"), std::string::npos) << r.status();
  o = Small(1);
  o.ema = 1.0;
  r = TrainDit(**runner, o);
  EXPECT_NE(r.status().message().find("ema must be in [0, 0.99999]"), std::string::npos) << r.status();
  o = Small(1);
  o.first_chunk_share = -0.1;
  r = TrainDit(**runner, o);
  EXPECT_NE(r.status().message().find("first_chunk_share must be in [0, 1]"), std::string::npos) << r.status();
  o = Small(1);
  o.object_weight = 1001;
  r = TrainDit(**runner, o);
  EXPECT_NE(r.status().message().find("object_weight must be in [0, 1000]"), std::string::npos) << r.status();
  o = Small(1);
  o.mirror_pairs = true;
  o.batch = 3;
  r = TrainDit(**runner, o);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("batch must be even with mirror_pairs"), std::string::npos) << r.status();
}

// late_weight reweights the training loss only: the held-out loss before training is the
// same unweighted figure, the trained weights differ.
TEST_F(TrainDitTest, LateWeightChangesTrainingNotTheHeldOutMeasure) {
  DitTrainOptions o = Small(3);
  o.late_weight = 8.0;
  ExpectRetrains(o);
}

// The batch's samples computed on several threads at once give the weights of one thread,
// bit for bit (samples drawn in batch order, gradients summed in batch order), with a batch
// the workers do not divide evenly.
TEST_F(TrainDitTest, ObjectWeightChangesTrainingNotTheHeldOutMeasure) {
  DitTrainOptions o = Small(3);
  o.object_weight = 20.0;
  ExpectRetrains(o);
}

// The object share of a latent cell is the share of its pixels (its 4 frames x 8 x 8) that
// the world labels as an object: over the whole clip it adds up to the labelled pixels, a
// cell with no labelled pixel is 0 and one under an object 1.
TEST(LatentObjectShareTest, CountsEachCellsLabelledPixels) {
  const physics::Scene scene = physics::MakeScene(12345);
  ASSERT_FALSE(scene.objects.empty());
  auto frames = physics::RenderScene(scene, 64, 24);
  ASSERT_TRUE(frames.ok()) << frames.status();
  auto share = LatentObjectShare(*frames, 6, 8, 8);
  ASSERT_TRUE(share.ok()) << share.status();
  ASSERT_EQ(share->sizes(), (std::vector<int64_t>{1, 1, 6, 8, 8}));
  int64_t labelled = 0;
  for (const physics::RenderedFrame& f : *frames) {
    labelled += std::count_if(f.label.begin(), f.label.end(), [](uint8_t l) { return l != 0; });
  }
  ASSERT_GT(labelled, 0);
  EXPECT_NEAR(share->sum().item<double>() * 4 * 8 * 8, static_cast<double>(labelled), 1e-3);
  // Latent frame 0, cell (i, j): its pixels of frames 0-3, counted by hand.
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 8; ++j) {
      int count = 0;
      for (int f = 0; f < 4; ++f) {
        for (int y = 8 * i; y < 8 * i + 8; ++y) {
          for (int x = 8 * j; x < 8 * j + 8; ++x) count += (*frames)[static_cast<size_t>(f)].label[y * 64 + x] != 0;
        }
      }
      EXPECT_FLOAT_EQ(share->index({0, 0, 0, i, j}).item<float>(), count / 256.0f) << i << "," << j;
    }
  }
  EXPECT_EQ(share->min().item<float>(), 0.0f);
  EXPECT_LE(share->max().item<float>(), 1.0f);
  // Shapes that do not divide are refused.
  EXPECT_FALSE(LatentObjectShare(*frames, 5, 8, 8).ok());
  EXPECT_FALSE(LatentObjectShare(*frames, 6, 6, 6).ok());
  EXPECT_FALSE(LatentObjectShare({}, 6, 8, 8).ok());
}

TEST_F(TrainDitTest, AnyWorkerCountTrainsTheSameWeights) {
  DitTrainOptions o = Small(4);
  o.batch = 3;
  o.workers = 1;
  Trained one = Train(o);
  o.workers = 2;
  Trained two = Train(o);
  ASSERT_TRUE(one.ok && two.ok);
  ASSERT_EQ(one.weights.size(), two.weights.size());
  int changed = 0;
  const auto initial = InitialWeights();
  ASSERT_FALSE(initial.empty());
  for (const auto& [name, t] : one.weights) {
    EXPECT_TRUE(at::equal(t, two.weights.at(name))) << name << " differs between 1 and 2 workers";
    if (!at::equal(t, initial.at(name))) ++changed;
  }
  EXPECT_GT(changed, static_cast<int>(one.weights.size()) / 2) << "training left most weights unchanged";
}

// Drawing the t2v samples from the first chunk's steps trains other weights from the same
// start (at 0 it draws nothing: the other tests' runs are the plain ones).
TEST_F(TrainDitTest, FirstChunkShareDrawsOtherSteps) {
  DitTrainOptions o = Small(3);
  o.first_chunk_share = 1.0;
  ExpectRetrains(o);
}

// first_chunk_max_t keeps the noisy end of those steps: at 1 it is the whole list (bit-equal
// weights); at 0 only the pure-noise step, which trains other weights; a level outside [0, 1]
// is refused naming it.
TEST_F(TrainDitTest, FirstChunkMaxTDrawsTheNoisyEndOnly) {
  DitTrainOptions o = Small(3);
  o.first_chunk_share = 1.0;
  Trained all = Train(o);
  o.first_chunk_max_t = 1.0;
  Trained same = Train(o);
  o.first_chunk_max_t = 0.0;
  Trained noisy = Train(o);
  ASSERT_TRUE(all.ok && same.ok && noisy.ok);
  int differ = 0;
  for (const auto& [name, t] : all.weights) {
    EXPECT_TRUE(at::equal(t, same.weights.at(name))) << name;
    differ += at::equal(t, noisy.weights.at(name)) ? 0 : 1;
  }
  EXPECT_GT(differ, static_cast<int>(all.weights.size()) / 2);
  auto runner = ModelJobRunner::Load((dir_ / "set").string());
  ASSERT_TRUE(runner.ok()) << runner.status();
  o.first_chunk_max_t = 1.5;
  auto r = TrainDit(**runner, o);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("first_chunk_max_t must be in [0, 1]"), std::string::npos) << r.status();
}

// Mirror pairs replace every second sample with the mirror of the one before (batch 2: one
// drawn scene and its mirror image each step).
TEST_F(TrainDitTest, MirrorPairsTrainOnTheMirroredScenes) {
  DitTrainOptions o = Small(3);
  o.mirror_pairs = true;
  ExpectRetrains(o);
}

// Single-object scenes replace the drawn share of the training scenes; the held-out scenes
// stay the world's (the same loss before training), share 0 is the world's scenes bit for bit.
TEST_F(TrainDitTest, SingleObjectShareTrainsOnSingleObjectScenes) {
  DitTrainOptions o = Small(3);
  Trained plain = Train(o);
  o.single_object_share = 0.0;
  Trained none = Train(o);
  ASSERT_TRUE(plain.ok && none.ok);
  for (const auto& [name, t] : plain.weights) EXPECT_TRUE(at::equal(t, none.weights.at(name))) << name;
  o.single_object_share = 1.0;
  ExpectRetrains(o);
  auto runner = ModelJobRunner::Load((dir_ / "set").string());
  ASSERT_TRUE(runner.ok()) << runner.status();
  o.single_object_share = -0.5;
  auto r = TrainDit(**runner, o);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("single_object_share must be in [0, 1]"), std::string::npos) << r.status();
}

// Captions per chunk change the later chunks' rows of the scenes whose objects have turned
// (bounced) by then, so training reads other captions and writes other weights.
TEST_F(TrainDitTest, ChunkCaptionsTrainOnEachChunksOwnCaption) {
  DitTrainOptions o = Small(6);
  Trained first = Train(o);
  o.chunk_captions = true;
  Trained per_chunk = Train(o);
  ASSERT_TRUE(first.ok && per_chunk.ok);
  EXPECT_GT(Differing(first, per_chunk), static_cast<int>(first.weights.size()) / 2);
}

TEST_F(TrainDitTest, CaptionDropoutTrainsTheNullCaptionPass) {
  DitTrainOptions o = Small(3);
  o.caption_dropout = 1.0;
  ExpectRetrains(o);
}

// The caption gain compares a scene's own caption with another held-out scene's on the same
// noise: exactly 0 with one held-out scene (the other caption is its own), not 0 with two
// (even the random DiT's velocity depends on its caption); no step leaves it as it was. The
// colour gain compares it with the scene's caption recoloured, the direction gain with it
// turned.
TEST_F(TrainDitTest, CaptionGainComparesOwnCaptionWithAnothers) {
  DitTrainOptions o = Small(0);
  o.heldout_scenes = 1;
  Trained one = Train(o);
  o.heldout_scenes = 2;
  Trained two = Train(o);
  ASSERT_TRUE(one.ok && two.ok);
  EXPECT_EQ(one.result.caption_gain_before, 0.0);
  EXPECT_EQ(one.result.caption_gain_after, 0.0);
  EXPECT_NE(two.result.caption_gain_before, 0.0);
  EXPECT_TRUE(std::isfinite(two.result.caption_gain_before));
  EXPECT_EQ(two.result.caption_gain_after, two.result.caption_gain_before);
  // The colour gain recolours the scene's own caption: not 0 even with one scene.
  EXPECT_NE(one.result.colour_gain_before, 0.0);
  EXPECT_TRUE(std::isfinite(one.result.colour_gain_before));
  EXPECT_EQ(two.result.colour_gain_after, two.result.colour_gain_before);
  // The direction gain swaps left and right in the scene's own caption (the two held-out
  // scenes move sideways, so their captions change).
  EXPECT_NE(two.result.first_chunk_direction_gain_before, 0.0);
  EXPECT_TRUE(std::isfinite(two.result.first_chunk_direction_gain_before));
  EXPECT_EQ(two.result.first_chunk_direction_gain_after, two.result.first_chunk_direction_gain_before);
  // Apart by chunk 0's noise level: one entry per first-chunk step, noisiest first (chunk 0
  // is denoised along the plan), levels in [0, 1), and their mean the whole gain.
  const auto& by_level = two.result.first_chunk_direction_gain_by_level;
  ASSERT_GE(by_level.size(), 2u);
  double mean = 0;
  for (size_t k = 0; k < by_level.size(); ++k) {
    EXPECT_GE(by_level[k].first, 0.0);
    EXPECT_LT(by_level[k].first, 1.0);
    if (k > 0) EXPECT_GT(by_level[k].first, by_level[k - 1].first);
    mean += by_level[k].second / static_cast<double>(by_level.size());
  }
  EXPECT_NEAR(mean, two.result.first_chunk_direction_gain_after, 1e-9);
}

// The moving average leaves training as it was: over 3 steps the last step's weights it
// returns are the plain run's, bit for bit, with their held-out loss, and the model holds
// the average. After one step with ema 0.1 (below the warm-up's 2 / 11) the average is
// 0.1 x the start + 0.9 x the trained weights.
TEST_F(TrainDitTest, EmaAveragesTheWeightsAndLeavesTrainingAsItWas) {
  DitTrainOptions o = Small(3);
  Trained plain = Train(o);
  o.ema = 0.9;
  Trained ema = Train(o);
  ASSERT_TRUE(plain.ok && ema.ok);
  EXPECT_TRUE(plain.result.raw_weights.empty());
  ASSERT_EQ(ema.result.raw_weights.size(), plain.weights.size());
  EXPECT_EQ(ema.result.heldout_loss_raw, plain.result.heldout_loss_after);
  EXPECT_NE(ema.result.heldout_loss_after, plain.result.heldout_loss_after);
  int moved = 0;
  for (const auto& [name, t] : plain.weights) {
    EXPECT_TRUE(at::equal(t, ema.result.raw_weights.at(name))) << name;
    moved += at::equal(ema.weights.at(name), t) ? 0 : 1;
  }
  EXPECT_GT(moved, static_cast<int>(plain.weights.size()) / 2) << "the model does not hold the average";

  o = Small(1);
  Trained one = Train(o);
  o.ema = 0.1;
  Trained one_ema = Train(o);
  ASSERT_TRUE(one.ok && one_ema.ok);
  const auto initial = InitialWeights();
  ASSERT_FALSE(initial.empty());
  for (const auto& [name, t] : one.weights) {
    const at::Tensor expected = 0.1 * initial.at(name).to(at::kFloat) + 0.9 * t;
    EXPECT_TRUE(at::allclose(one_ema.weights.at(name), expected, 1e-5, 1e-6)) << name;
  }
}

}  // namespace
}  // namespace magi
