// The real magi-train-tiny binary: `vae` trains and writes a VAE folder the real loader reads;
// `dit` builds a whole set around such a VAE, trains its DiT and writes a folder the model
// runner serves; bad flags exit 2 naming the flag and write nothing to --out.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "worker/model/config.h"
#include "worker/model/safetensors.h"
#include "worker/runner/model_job_runner.h"
#include "worker/runner/tiny_model.h"
#include "worker/vae/random_vae_checkpoint.h"
#include "worker/vae/vit_vae.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int status = -1;
  std::string output;
};

CliRun Sh(const std::string& args) {
  CliRun r;
  const std::string cmd = std::string(MAGI_TRAIN_TINY_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), static_cast<int>(buf.size()), p) != nullptr) r.output += buf.data();
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST(MagiTrainTinyCli, VaeTrainsAndWritesAFolderTheLoaderReads) {
  const fs::path out = fs::temp_directory_path() / ("magi_train_cli_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const CliRun r = Sh("vae --out " + out.string() + " --steps 3 --batch 2 --frames 8 --size 32 --log_every 1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("step 3/3: loss"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("held-out reconstruction MSE"), std::string::npos) << r.output;
  ViTVae::Options o;
  o.compute = VaeCompute::kFloat32;
  auto vae = ViTVae::LoadFolder(out.string(), o);
  EXPECT_TRUE(vae.ok()) << vae.status();
  EXPECT_NE(r.output.find("object colour error"), std::string::npos) << r.output;
  // The new VAE's position table is the training grid (--size 32: 4 x 4 tokens a frame, 3
  // latent frames), not the released 256.
  EXPECT_EQ((*vae)->config().video_size, 32);
  auto file = SafetensorsFile::Open((out / "diffusion_pytorch_model.safetensors").string());
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_NE((*file)->Find("encoder.pos_embed"), nullptr);
  EXPECT_EQ((*file)->Find("encoder.pos_embed")->shape, (std::vector<int64_t>{1, 3 * 4 * 4 + 1, 256}));
  EXPECT_EQ((*file)->Find("encoder.pos_embed")->dtype, StDtype::kF32);
  // It starts as the random VAE of the released geometry (its 256 x 256 table resized to the
  // grid at every call) with the same seed: the same encoder and decoder on that grid.
  fs::remove_all(out);
  const CliRun start = Sh("vae --out " + out.string() + " --steps 0 --frames 8 --size 32 --seed 3 --log_every 0");
  ASSERT_EQ(start.status, 0) << start.output;
  const fs::path released = out.string() + "_released";
  ASSERT_TRUE(WriteRandomVaeFolder(TinyVaeConfig(), released.string(), 3).ok());
  auto a = ViTVae::LoadFolder(out.string(), o);
  auto b = ViTVae::LoadFolder(released.string(), o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->config().video_size, 32);
  EXPECT_EQ((*b)->config().video_size, 256);
  at::Tensor clip = at::rand({1, 3, 12, 32, 32}, at::detail::createCPUGenerator(5)) * 2 - 1;
  auto za = (*a)->EncodeTile(clip), zb = (*b)->EncodeTile(clip);
  ASSERT_TRUE(za.ok() && zb.ok());
  EXPECT_LT((*za - *zb).abs().max().item<double>(), 1e-5);
  auto xa = (*a)->DecodeTile(*za), xb = (*b)->DecodeTile(*za);
  ASSERT_TRUE(xa.ok() && xb.ok());
  EXPECT_LT((*xa - *xb).abs().max().item<double>(), 1e-5);
  fs::remove_all(released);
  // A wider, shallower new VAE, stored in bfloat16: the written folder is that VAE.
  fs::remove_all(out);
  const CliRun wide = Sh("vae --out " + out.string() +
                         " --steps 1 --batch 2 --frames 8 --size 32 --embed 512 --layers 1 --store_dtype bfloat16");
  ASSERT_EQ(wide.status, 0) << wide.output;
  auto loaded = ViTVae::LoadFolder(out.string(), o);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->config().embed_dim, 512);
  EXPECT_EQ((*loaded)->config().depth, 1);
  EXPECT_EQ((*loaded)->config().unpatch_channels(), 2);
  auto half = SafetensorsFile::Open((out / "diffusion_pytorch_model.safetensors").string());
  ASSERT_TRUE(half.ok()) << half.status();
  for (const std::string& key : (*half)->Keys()) EXPECT_EQ((*half)->Find(key)->dtype, StDtype::kBF16) << key;
  fs::remove_all(out);
}

TEST(MagiTrainTinyCli, DitBuildsTrainsAndWritesASetTheRunnerServes) {
  const fs::path dir = fs::temp_directory_path() / ("magi_train_cli_dit_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  CliRun r = Sh("vae --out " + (dir / "vae").string() + " --steps 1 --batch 1 --frames 8 --size 32");
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path set = dir / "set";
  r = Sh("dit --out " + set.string() + " --vae " + (dir / "vae").string() +
         " --size 32 --chunks 2 --steps 2 --batch 1 --scenes 2 --name tiny-test --log_every 1 --ema 0.5 --cfg_number 3 --heldout 2"
         " --store_dtype float16");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("runtime_config.scale_factor"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 2/2: loss"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("held-out velocity loss"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("caption gain (t2v"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(set / "training.json"));
  // --ema: the set's DiT is the average; the last step's weights lie beside it, not in dit/.
  EXPECT_NE(r.output.find("the last step's weights (held-out loss"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(set / "dit_no_ema.safetensors"));
  // --store_dtype: both DiT files in float16 (the runner below reads them).
  for (const fs::path& f : {set / "dit" / "model.safetensors", set / "dit_no_ema.safetensors"}) {
    auto st = SafetensorsFile::Open(f.string());
    ASSERT_TRUE(st.ok()) << st.status();
    for (const std::string& key : (*st)->Keys()) EXPECT_EQ((*st)->Find(key)->dtype, StDtype::kF16) << f << " " << key;
  }
  EXPECT_FALSE(fs::exists(set / "tiny_model.json")) << "a trained set is not the random tiny set";
  auto c = LoadMagiConfig((set / "config.json").string());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->runtime.video_size_h, 32);
  EXPECT_EQ(c->runtime.video_size_w, 32);
  EXPECT_EQ(c->runtime.num_frames, 48);
  EXPECT_NE(c->runtime.scale_factor, 0.18215);
  EXPECT_EQ(c->runtime.cfg_number, 3);  // --cfg_number
  auto runner = ModelJobRunner::Load(set.string());
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->model_name(), "tiny-test");
  // The float16 set trains on (in float32) from --init: Adam has no float16 kernels on CPU.
  r = Sh("dit --init " + set.string() + " --out " + (dir / "more").string() +
         " --size 32 --chunks 2 --steps 1 --batch 1 --scenes 2 --heldout 2 --log_every 1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("step 1/1: loss"), std::string::npos) << r.output;
  fs::remove_all(dir / "more");
  // Nothing is left beside --out.
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_TRUE(e.path().filename() == "vae" || e.path().filename() == "set") << e.path();
  }
  fs::remove_all(dir);
}
// `roundtrip` writes each eval scene through the VAE as a frame folder magi-physics reads:
// 96 frames at --size, and they are the VAE's output, not the true frames (an untrained VAE
// is far from them).
TEST(MagiTrainTinyCli, RoundtripWritesTheEvalScenesThroughTheVae) {
  const fs::path dir = fs::temp_directory_path() / ("magi_train_cli_rt_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  CliRun r = Sh("vae --out " + (dir / "vae").string() + " --steps 1 --batch 1 --frames 8 --size 32");
  ASSERT_EQ(r.status, 0) << r.output;
  r = Sh("roundtrip --vae " + (dir / "vae").string() + " --out " + (dir / "rt").string() +
         " --scenes 2 --seed 3 --size 32");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("2 scenes (eval seed 3) round-tripped"), std::string::npos) << r.output;
  for (int i = 0; i < 2; ++i) {
    const fs::path scene = dir / "rt" / ("scene_" + std::to_string(i));
    EXPECT_TRUE(fs::exists(scene / "frame_0095.ppm")) << scene;
    EXPECT_FALSE(fs::exists(scene / "frame_0096.ppm")) << scene;
  }
  // The eval reads them (as whole videos) and scores them below ground truth.
  const std::string eval = std::string(MAGI_PHYSICS_BIN) + " eval --scenes 2 --seed 3 --size 32 --context_frames 24 --generated " +
                           (dir / "rt").string() + " 2>&1";
  FILE* p = popen(eval.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), static_cast<int>(buf.size()), p) != nullptr) out += buf.data();
  ASSERT_EQ(pclose(p), 0) << out;
  const size_t row = out.find("generated (rt)");
  ASSERT_NE(row, std::string::npos) << out;
  EXPECT_EQ(out.find(" 100.0", row), std::string::npos) << out;
  r = Sh("roundtrip --out " + (dir / "rt2").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--vae: required"), std::string::npos) << r.output;
  r = Sh("roundtrip --vae " + (dir / "vae").string() + " --out " + (dir / "rt2").string() + " --scenes 0");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--scenes"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

TEST(MagiTrainTinyCli, BadFlagsExit2NamingTheFlag) {
  const fs::path out = fs::temp_directory_path() / ("magi_train_cli_bad_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const std::string o = " --out " + out.string();
  // Each command line and what its error must say.
  const std::pair<std::string, std::string> cases[] = {
      {"vae", "--out: required"},
      {"vae" + o + " --frames 10 --steps 1", "frames must be a multiple"},
      {"vae" + o + " --threads 0", "--threads: must be in [1, 256], got 0"},
      {"vae" + o + " --latent_noise -1 --steps 1", "latent_noise must be in [0, 10]"},
      {"vae" + o + " --embed 300", "--embed: must be a multiple of 256 in [256, 2048] (or 0), got 300"},
      {"vae" + o + " --layers 17", "--layers: must be in [1, 16] (or 0), got 17"},
      {"vae" + o + " --init /tmp --embed 512", "--embed, --layers: only for a new VAE"},
      {"vae" + o + " --store_dtype half", "--store_dtype: must be float32, float16 or bfloat16, got 'half'"},
      {"dit" + o + " --vae /tmp --store_dtype fp8", "--store_dtype: must be float32, float16 or bfloat16, got 'fp8'"},
      {"roundtrip --vae /tmp" + o + " --latent_noise 11", "--latent_noise: must be in [0, 10], got 11"},
      {"train" + o, "usage: magi-train-tiny vae"},
      {"dit" + o, "--vae: required without --init"},
      {"dit" + o + " --vae /nonexistent/vae", "--vae: '/nonexistent/vae' is not a folder"},
      {"dit" + o + " --layers 17", "--layers: must be in [1, 16]"},
      {"dit" + o + " --cfg_number 2", "--cfg_number: must be 1 or 3 (or 0: the set's), got 2"},
      {"dit" + o + " --vae /tmp --heldout 0", "heldout_scenes must be in [1, 1024], got 0"},
      {"dit" + o + " --vae /tmp --chunks 1", "chunks must be in [2, 16], got 1"},
      {"dit" + o + " --vae /tmp --ema 1", "ema must be in [0, 0.99999], got 1"},
      {"dit" + o + " --init /nonexistent/set", "--init: '/nonexistent/set' is not a folder"},
  };
  for (const auto& [args, message] : cases) {
    const CliRun r = Sh(args);
    EXPECT_EQ(r.status, 2) << args;
    EXPECT_NE(r.output.find(message), std::string::npos) << args << ": " << r.output;
  }
  // Nothing was written: a run that fails leaves --out as it was.
  EXPECT_FALSE(fs::exists(out)) << out;
  fs::remove_all(out);
}

}  // namespace
}  // namespace magi
