// magi-train-tiny: trains the tiny model set on the synthetic physics world (issue #17).
//
//   magi-train-tiny vae --out DIR [--init DIR] [--steps N] [--batch N] [--frames N] [--size N]
//                       [--lr X] [--kl_weight X] [--decoder_only] [--latent_noise X [--latent_noise_relative]] [--colour_anchor W] [--posterior_mean] [--embed N] [--layers N] [--store_dtype D] [--seed S]
//                       [--threads N] [--log_every N]
//
// `vae`: the tiny set's ViT VAE (worker/runner/tiny_model.h TinyVaeConfig), from random
// weights drawn from --seed (or the VAE folder --init), trained on world clips
// (tools/train_tiny/train_vae.h) and written to --out as a released-layout VAE folder
// (config.json + diffusion_pytorch_model.safetensors) that ViTVae::LoadFolder reads. Prints
// the loss as it goes and the held-out reconstruction error before and after.
//
//   magi-train-tiny dit --out DIR (--vae DIR | --init DIR) [--steps N] [--batch N] [--size N]
//                       [--chunks N] [--scenes N] [--lr X] [--v2v_fraction X] [--late_weight X] [--object_weight X] [--ema D] [--caption_dropout P] [--first_chunk_share P [--first_chunk_max_t T]] [--mirror_pairs] [--single_object_share P] [--chunk_captions] [--cfg_number N] [--heldout N] [--store_dtype D] [--seed S]
//                       [--layers N] [--name NAME] [--threads N] [--log_every N]
//
// `dit`: a whole model set in --out (MAGI-1's layouts: config.json, dit/, t5/, vae/,
// special_tokens.npz, plus training.json saying how it was made), served by `magi-worker
// --model-dir`. Without --init it starts from the tiny set (worker/runner/tiny_model.h: its
// T5, tokenizer and special tokens, and a random DiT) with the VAE folder --vae, sets the
// runtime video size to --size and the frame count to --chunks chunks, and calibrates
// runtime_config.scale_factor so the latents have unit standard deviation; with --init it
// continues from that set. Then it trains the DiT (tools/train_tiny/train_dit.h) and writes.
//
//   magi-train-tiny roundtrip --vae DIR --out DIR [--scenes N] [--seed S] [--size N] [--latent_noise X]
//                             [--threads N]
//
// `roundtrip`: the VAE's ceiling on the continuation eval -- each held-out scene of
// `magi-physics eval --seed S` (96 frames) encoded and decoded by the VAE folder --vae with the
// pipeline's codec (its 12-frame tiles, as serving does), written as frame folders OUT/scene_<i>/
// that `magi-physics eval --generated OUT` scores. No model built on that VAE can score
// above this row. --latent_noise adds Gaussian noise of that standard deviation to the latents
// before decoding: how much latent error the decoder tolerates before the eval sees motion.
// Exit status: 0 trained (or round-tripped) and written, 1 failed, 2 bad flags.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "physics/continuation_eval.h"
#include "physics/ppm.h"
#include "physics/world.h"
#include "tools/train_tiny/train_dit.h"
#include "tools/train_tiny/train_vae.h"
#include "worker/model/config.h"
#include "worker/model/random_checkpoint.h"
#include "worker/runner/model_job_runner.h"
#include "worker/vae/vae_codec.h"
#include "worker/runner/tiny_model.h"
#include "worker/vae/random_vae_checkpoint.h"
#include "worker/vae/vit_vae.h"

ABSL_FLAG(std::string, out, "", "output folder (created; an existing VAE there is replaced once training succeeds)");
ABSL_FLAG(std::string, init, "", "start from this VAE folder instead of random tiny weights");
ABSL_FLAG(int, steps, -1, "optimiser steps, in [0, 1000000] (default: vae 400, dit 1000)");
ABSL_FLAG(int, batch, -1, "clips per step, in [1, 256] (default: vae 8, dit 4)");
ABSL_FLAG(int, frames, 12, "frames per clip: a multiple of 4 in [4, 96]");
ABSL_FLAG(int, size, 64, "clip width and height: a multiple of 16 in [16, 256]");
ABSL_FLAG(double, lr, -1, "Adam learning rate, in [1e-8, 1] (default: vae 1e-3, dit 5e-4)");
ABSL_FLAG(std::string, vae, "", "dit: the trained VAE folder (magi-train-tiny vae --out) of the new set");
ABSL_FLAG(int, chunks, 4, "dit: latent chunks per training clip (24 frames each), in [2, 16]");
ABSL_FLAG(int, scenes, -1, "dit: training scenes (encoded once), in [1, 100000] (default 512); roundtrip: eval scenes (default 20)");
ABSL_FLAG(double, ema, 0,
          "dit: the set gets an exponential moving average of the weights with this decay (warm-up "
          "min(D, (1 + step) / (10 + step))), the last step's weights go to SET/dit_no_ema.safetensors; "
          "0: the last step's weights; in [0, 0.99999]");
ABSL_FLAG(double, caption_dropout, 0,
          "dit: the share of samples trained with the null caption, as the guidance's context-only pass "
          "(cfg_number 3 needs it); in [0, 1]");
ABSL_FLAG(double, first_chunk_share, 0,
          "dit: the share of t2v samples drawn from the steps that denoise the first chunk (where only "
          "the caption says what the scene holds); in [0, 1]");
ABSL_FLAG(double, first_chunk_max_t, 1,
          "dit: draw those first-chunk steps only where the first chunk's noise level t (1 clean) is at most "
          "X, the noisy end where text-to-video picks an object's path; in [0, 1]");
ABSL_FLAG(double, single_object_share, 0,
          "dit: the share of training scenes drawn from the world's single-object scenes (each chosen by a draw "
          "of its own seed; their captions name one object's colour, shape, motion and direction), in [0, 1]; "
          "the held-out scenes stay the world's; 0: none");
ABSL_FLAG(bool, chunk_captions, false,
          "dit: caption each chunk as the scene is at its first frame (a direction word names the way an "
          "object moves in that chunk, the other way after a bounce); without it every chunk gets the first caption");
ABSL_FLAG(bool, mirror_pairs, false,
          "dit: train each batch as pairs of a scene and its mirror image (its caption's left and right "
          "swapped) with the same noise; needs an even --batch");
ABSL_FLAG(int, cfg_number, 0,
          "dit: runtime_config.cfg_number of the written set: 1 (no guidance) or 3 (text guidance with "
          "the context-only pass, which --caption_dropout trains); 0 keeps the set's");
ABSL_FLAG(int, heldout, 4, "dit: held-out scenes whose loss and caption gain are measured before and after");
ABSL_FLAG(double, late_weight, 0,
          "dit: each noisy chunk's loss weighted 1 + X t^2 (t its noise level, 1 clean), in [0, 1000]");
ABSL_FLAG(double, object_weight, 0,
          "dit: each latent cell's loss weighted 1 + X c, c the share of its pixels showing an object, in "
          "[0, 1000]");
ABSL_FLAG(double, v2v_fraction, 0.5, "dit: share of samples drawn from the v2v plan, in [0, 1]");
ABSL_FLAG(int, layers, 0,
          "dit: transformer layers of a new set's DiT, in [1, 16] (0: the tiny set's 2); vae: blocks of a new "
          "VAE's encoder and of its decoder, in [1, 16] (0: the tiny set's 2)");
ABSL_FLAG(int, embed, 0,
          "vae: width of a new VAE, a multiple of 256 in [256, 2048] (0: the tiny set's 256); the decoder "
          "unpatchifies it to width / 256 channels per pixel before its last 3x3x3 convolution makes RGB, "
          "so 768 or more gives each pixel 3 channels of its own (256 gives one: colour is lost)");
ABSL_FLAG(std::string, name, "tiny-world", "dit: the served model name (serving_config.name) of a new set");
ABSL_FLAG(double, latent_noise, 0,
          "roundtrip: standard deviation of Gaussian noise added to the latents before decoding (the "
          "decoder's tolerance to a generator's latent error); vae: the largest such level trained on, "
          "each clip's drawn from [0, X); in [0, 10]");
ABSL_FLAG(double, colour_anchor, 0,
          "vae: weight of the colour anchor, which gives the first 3 latent channels the objects' colour "
          "(each latent patch's mean RGB less its frame's mean, at the latent's scale); in [0, 100], 0: none");
ABSL_FLAG(bool, latent_noise_relative, false,
          "vae: --latent_noise is a multiple of each clip latent's root mean square, not absolute (an "
          "encoder cannot outgrow it by scaling its latents up)");
ABSL_FLAG(bool, posterior_mean, false,
          "vae: decode the posterior mean in training, not a sample (a sample's noise hides small offsets "
          "such as an object's colour from the decoder)");
ABSL_FLAG(std::string, store_dtype, "float32",
          "vae and dit: the dtype the trained weights are written in: float32, float16 or bfloat16 (training "
          "runs in float32; the loaders read any of them into their compute dtype)");
ABSL_FLAG(bool, decoder_only, false, "vae: train the decoder alone (with --init: the latents stay as they are)");
ABSL_FLAG(double, kl_weight, 1e-6, "vae: weight of the posterior's KL term, in [0, 1]");
ABSL_FLAG(uint64_t, seed, 1, "seed of the random start, the training scenes and the posterior noise");
ABSL_FLAG(int, threads, 2,
          "threads, in [1, 256]; vae and dit: the batch's samples computed at once, one thread each (the "
          "same weights for any count); roundtrip: ATen threads");
ABSL_FLAG(int, log_every, 25, "print the loss every N steps (0: only the summary)");

namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "magi-train-tiny: %s\n", std::string(s.message()).c_str());
  return absl::IsInvalidArgument(s) ? 2 : 1;
}

// --store_dtype, or why not.
absl::StatusOr<at::ScalarType> StoreDtype() {
  const std::string d = absl::GetFlag(FLAGS_store_dtype);
  if (d == "float32") return at::kFloat;
  if (d == "float16") return at::kHalf;
  if (d == "bfloat16") return at::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("--store_dtype: must be float32, float16 or bfloat16, got '", d, "'"));
}

// `weights` in the stored dtype.
std::map<std::string, at::Tensor> Stored(const std::map<std::string, at::Tensor>& weights, at::ScalarType dtype) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : weights) out[name] = t.detach().to(dtype).contiguous();
  return out;
}

}  // namespace

template <typename T>
T Or(T flag, T fallback) {
  return flag == T(-1) ? fallback : flag;
}

int RunVae(const std::string& out, int log_every);
int RunDit(const std::string& out, int log_every);
int RunRoundtrip(const std::string& out);

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string command = args.size() == 2 ? args[1] : "";
  if (command != "vae" && command != "dit" && command != "roundtrip") {
    std::fprintf(stderr,
                 "usage: magi-train-tiny vae --out DIR [--init DIR] [--steps N] [--batch N] [--frames N] [--size N] "
                 "[--lr X] [--kl_weight X] [--decoder_only] [--latent_noise X [--latent_noise_relative]] [--colour_anchor W] [--posterior_mean] [--embed N] [--layers N] [--store_dtype D] [--seed S] [--threads N] [--log_every N]\n"
                 "       magi-train-tiny dit --out DIR (--vae DIR | --init DIR) [--steps N] [--batch N] [--size N] "
                 "[--chunks N] [--scenes N] [--lr X] [--v2v_fraction X] [--late_weight X] [--object_weight X] [--ema D] [--caption_dropout P] [--first_chunk_share P [--first_chunk_max_t T]] [--mirror_pairs] [--single_object_share P] [--chunk_captions] [--cfg_number N] [--heldout N] [--store_dtype D] [--seed S] [--layers N] [--name NAME] "
                 "[--threads N] "
                 "[--log_every N]\n"
                 "       magi-train-tiny roundtrip --vae DIR --out DIR [--scenes N] [--seed S] [--size N] [--latent_noise X] "
                 "[--threads N]\n");
    return 2;
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--out: required (the ",
                     command == "vae" ? "VAE folder" : command == "dit" ? "model set folder" : "frame folders",
                     " to write)")));
  }
  const int threads = absl::GetFlag(FLAGS_threads);
  if (threads < 1 || threads > 256) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--threads: must be in [1, 256], got ", threads)));
  }
  const int log_every = absl::GetFlag(FLAGS_log_every);
  if (log_every < 0) return Fail(absl::InvalidArgumentError(absl::StrCat("--log_every: must be >= 0, got ", log_every)));
  if (absl::GetFlag(FLAGS_seed) == 0) return Fail(absl::InvalidArgumentError("--seed: must be >= 1, got 0"));
  at::set_num_threads(threads);
  if (command == "roundtrip") return RunRoundtrip(out);
  return command == "vae" ? RunVae(out, log_every) : RunDit(out, log_every);
}

int RunVae(const std::string& out, int log_every) {
  const absl::StatusOr<at::ScalarType> store = StoreDtype();
  if (!store.ok()) return Fail(store.status());
  magi::VaeTrainOptions o;
  o.steps = Or(absl::GetFlag(FLAGS_steps), 400);
  o.batch = Or(absl::GetFlag(FLAGS_batch), 8);
  o.frames = absl::GetFlag(FLAGS_frames);
  o.size = absl::GetFlag(FLAGS_size);
  o.learning_rate = Or(absl::GetFlag(FLAGS_lr), 1e-3);
  o.kl_weight = absl::GetFlag(FLAGS_kl_weight);
  o.latent_noise = absl::GetFlag(FLAGS_latent_noise);
  o.latent_noise_relative = absl::GetFlag(FLAGS_latent_noise_relative);
  o.colour_anchor = absl::GetFlag(FLAGS_colour_anchor);
  o.decoder_only = absl::GetFlag(FLAGS_decoder_only);
  o.posterior_mean = absl::GetFlag(FLAGS_posterior_mean);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.workers = absl::GetFlag(FLAGS_threads);
  o.on_step = [&](int step, double loss, double mse) {
    if (log_every > 0 && (step % log_every == 0 || step == 1)) {
      std::printf("step %d/%d: loss %.6f, reconstruction MSE %.6f\n", step, o.steps, loss, mse);
      std::fflush(stdout);
    }
  };

  // The start: --init, or the tiny set's VAE with random weights from --seed (written to a
  // scratch folder: --out is touched only once training has succeeded).
  std::string start = absl::GetFlag(FLAGS_init);
  const int embed = absl::GetFlag(FLAGS_embed), layers = absl::GetFlag(FLAGS_layers);
  if (embed != 0 && (embed < 256 || embed > 2048 || embed % 256 != 0)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--embed: must be a multiple of 256 in [256, 2048] (or 0), got ", embed)));
  }
  if (layers != 0 && (layers < 1 || layers > 16)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--layers: must be in [1, 16] (or 0), got ", layers)));
  }
  if ((embed != 0 || layers != 0) && !start.empty()) {
    return Fail(absl::InvalidArgumentError("--embed, --layers: only for a new VAE; --init keeps its VAE's"));
  }
  std::filesystem::path scratch;
  if (start.empty()) {
    magi::VaeConfig config = magi::TinyVaeConfig();
    if (embed != 0) config.embed_dim = embed;
    if (layers != 0) config.depth = layers;
    // A new VAE's position table is its training frames' grid: the released 256 x 256 table
    // would be resized to it at every step (4.7 M of a width-768 VAE's 12.4 M weights; 0.51 s
    // a step against 0.30). It starts as that resize of the random 256 x 256 table, so the
    // VAE starts as the same function as with the big table (a fresh random small table
    // trained to object colour error 78.7 against 39.8, measured).
    std::map<std::string, at::Tensor> weights = magi::RandomVaeWeights(config, o.seed);
    magi::VaeConfig grid = config;
    grid.video_size = o.size;
    for (const char* tower : {"encoder.pos_embed", "decoder.pos_embed"}) {
      weights[tower] = magi::ResizeVaePosEmbed(weights[tower], config, grid.latent_length(), grid.latent_size(),
                                               grid.latent_size())
                           .contiguous();
    }
    config = grid;
    scratch = std::filesystem::temp_directory_path() / absl::StrCat("magi-train-tiny-start-", ::getpid());
    if (absl::Status s = magi::WriteVaeFolder(config, weights, scratch.string()); !s.ok()) return Fail(s);
    start = scratch.string();
  }
  magi::ViTVae::Options vo;
  vo.compute = magi::VaeCompute::kFloat32;
  auto vae = magi::ViTVae::LoadFolder(start, vo);
  if (!scratch.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(scratch, ec);
  }
  if (!vae.ok()) {
    if (absl::GetFlag(FLAGS_init).empty()) return Fail(vae.status());
    return Fail(absl::Status(vae.status().code(), absl::StrCat("--init: ", vae.status().message())));
  }
  std::printf("training the VAE (embed %lld, depth %lld) on %d x %d-frame %dx%d world clips per step, %d steps, seed %llu\n",
              static_cast<long long>((*vae)->config().embed_dim), static_cast<long long>((*vae)->config().depth),
              o.batch, o.frames, o.size, o.size, o.steps, static_cast<unsigned long long>(o.seed));
  auto trained = magi::TrainVae(**vae, o);
  if (!trained.ok()) return Fail(trained.status());
  std::map<std::string, at::Tensor> weights;
  for (const auto& [name, t] : (*vae)->NamedWeights()) weights[name] = t.detach();
  if (absl::Status s = magi::WriteVaeFolder((*vae)->config(), Stored(weights, *store), out); !s.ok()) return Fail(s);
  std::printf("held-out reconstruction MSE: %.6f before, %.6f after (%.1fx lower); %.1f s; written to %s\n",
              trained->heldout_mse_before, trained->heldout_mse_after,
              trained->heldout_mse_before / std::max(trained->heldout_mse_after, 1e-12), trained->seconds, out.c_str());
  std::printf("latent colour share (recoloured vs empty scene, held out): %.4f before, %.4f after\n",
              trained->colour_share_before, trained->colour_share_after);
  std::printf("object colour error (mean RGB distance of each reconstructed object from its colour, 0-255, held "
              "out): %.1f before, %.1f after\n",
              trained->colour_error_before, trained->colour_error_after);
  return 0;
}

namespace {

namespace fs = std::filesystem;

absl::Status CopyFolder(const fs::path& from, const fs::path& to, const char* flag) {
  std::error_code ec;
  if (!fs::is_directory(from, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", from.string(), "' is not a folder"));
  }
  fs::remove_all(to, ec);
  fs::create_directories(to.parent_path(), ec);
  fs::copy(from, to, fs::copy_options::recursive, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat(flag, ": cannot copy '", from.string(), "' to '", to.string(), "': ",
                                            ec.message()));
  }
  return absl::OkStatus();
}

absl::Status WriteTextFile(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write '", path.string(), "'"));
  return absl::OkStatus();
}

// The standard deviation of the VAE's latents (scale_factor 1) over `n` world clips.
absl::StatusOr<double> RawLatentStd(const magi::ModelJobRunner& runner, int size, int n) {
  const magi::VaeCodec* codec = runner.codec();
  std::vector<at::Tensor> all;
  for (int i = 0; i < n; ++i) {
    MAGI_ASSIGN_OR_RETURN(at::Tensor clip, magi::WorldClips(uint64_t{0xCA1} << 40 | static_cast<uint64_t>(i), 1,
                                                            runner.frames_per_chunk(), size));
    MAGI_ASSIGN_OR_RETURN(at::Tensor z, codec->Encode((clip + 1.0) * 127.5));
    all.push_back(z.to(at::kFloat).flatten());
  }
  return at::cat(all).std().item<double>();
}

// Builds the set in `dir`, trains its DiT and writes it there.
absl::Status TrainSet(const fs::path& dir, const magi::DitTrainOptions& o, at::ScalarType store, int log_every) {
  const std::string init = absl::GetFlag(FLAGS_init);
  const std::string vae = absl::GetFlag(FLAGS_vae);
  const fs::path config_path = dir / "config.json";
  if (!init.empty()) {
    MAGI_RETURN_IF_ERROR(CopyFolder(init, dir, "--init"));
    if (!vae.empty()) MAGI_RETURN_IF_ERROR(CopyFolder(vae, dir / "vae", "--vae"));
  } else {
    if (vae.empty()) {
      return absl::InvalidArgumentError("--vae: required without --init (the trained VAE folder of the new set)");
    }
    MAGI_RETURN_IF_ERROR(magi::WriteTinyModelSet(dir.string()));
    std::error_code ec;
    fs::remove(dir / "tiny_model.json", ec);  // not the random set any more
    MAGI_RETURN_IF_ERROR(CopyFolder(vae, dir / "vae", "--vae"));
    MAGI_ASSIGN_OR_RETURN(magi::MagiConfig c, magi::LoadMagiConfig(config_path.string()));
    c.runtime.video_size_h = c.runtime.video_size_w = o.size;
    c.runtime.num_frames = o.chunks * c.runtime.chunk_width * c.runtime.temporal_downsample_factor;
    c.serving.name = absl::GetFlag(FLAGS_name);
    if (const int layers = absl::GetFlag(FLAGS_layers); layers != 0) {
      c.model.num_layers = layers;
      magi::RandomCheckpointOptions rc;
      rc.seed = magi::kTinyModelSeed;
      MAGI_RETURN_IF_ERROR(
          magi::WriteRandomDitCheckpoint(c.model, (dir / c.runtime.load / "model.safetensors").string(), rc));
    }
    MAGI_RETURN_IF_ERROR(WriteTextFile(config_path, magi::MagiConfigToJson(c)));
    // scale_factor: the latents the DiT sees get unit standard deviation (the released
    // 0.18215 plays that role for the released VAE).
    {
      MAGI_ASSIGN_OR_RETURN(auto probe, magi::ModelJobRunner::Load(dir.string()));
      MAGI_ASSIGN_OR_RETURN(double raw, RawLatentStd(*probe, o.size, 16));
      c.runtime.scale_factor = 1.0 / raw;
      std::printf("VAE latent std %.4f: runtime_config.scale_factor %.6f\n", raw, c.runtime.scale_factor);
    }
    MAGI_RETURN_IF_ERROR(WriteTextFile(config_path, magi::MagiConfigToJson(c)));
  }
  if (const int cfg = absl::GetFlag(FLAGS_cfg_number); cfg != 0) {
    MAGI_ASSIGN_OR_RETURN(magi::MagiConfig c, magi::LoadMagiConfig(config_path.string()));
    c.runtime.cfg_number = cfg;
    MAGI_RETURN_IF_ERROR(WriteTextFile(config_path, magi::MagiConfigToJson(c)));
  }
  MAGI_ASSIGN_OR_RETURN(auto runner, magi::ModelJobRunner::Load(dir.string()));
  const magi::ModelConfig& m = runner->config().model;
  std::printf("training the DiT (%d layers, hidden %d) on %d plan steps per optimiser step, %d world scenes of %d "
              "chunks at %dx%d, %d steps, seed %llu\n",
              m.num_layers, m.hidden_size, o.batch, o.scenes, o.chunks, o.size, o.size, o.steps,
              static_cast<unsigned long long>(o.seed));
  std::fflush(stdout);
  magi::DitTrainOptions opt = o;
  opt.zero_init_output = init.empty();
  opt.on_step = [&](int step, double loss, double norm) {
    if (log_every > 0 && (step % log_every == 0 || step == 1)) {
      std::printf("step %d/%d: loss %.6f, gradient norm %.4f\n", step, opt.steps, loss, norm);
      std::fflush(stdout);
    }
  };
  MAGI_ASSIGN_OR_RETURN(magi::DitTrainResult r, magi::TrainDit(*runner, opt));
  {
    MAGI_ASSIGN_OR_RETURN(auto weights, runner->dit().NamedWeights());
    MAGI_RETURN_IF_ERROR(magi::WriteDitWeights(Stored(weights, store),
                                               (dir / runner->config().runtime.load / "model.safetensors").string()));
  }
  if (r.raw_weights.empty()) {
    std::error_code ec;
    fs::remove(dir / "dit_no_ema.safetensors", ec);  // an --init set's: not these weights
  } else {
    // Beside the set, not in its DiT folder: the loader reads the average.
    MAGI_RETURN_IF_ERROR(magi::WriteDitWeights(Stored(r.raw_weights, store), (dir / "dit_no_ema.safetensors").string()));
    std::printf("the last step's weights (held-out loss %.6f) written beside the average: "
                "SET/dit_no_ema.safetensors\n", r.heldout_loss_raw);
  }
  nlohmann::json t = {{"generator", "magi-train-tiny dit"},
                      {"init", init},
                      {"vae", vae},
                      {"steps", o.steps},
                      {"batch", o.batch},
                      {"size", o.size},
                      {"chunks", o.chunks},
                      {"scenes", o.scenes},
                      {"learning_rate", o.learning_rate},
                      {"v2v_fraction", o.v2v_fraction},
                      {"late_weight", o.late_weight},
                      {"object_weight", o.object_weight},
                      {"ema", o.ema},
                      {"caption_dropout", o.caption_dropout},
                      {"first_chunk_share", o.first_chunk_share},
                      {"first_chunk_max_t", o.first_chunk_max_t},
                      {"mirror_pairs", o.mirror_pairs},
                      {"single_object_share", o.single_object_share},
                      {"chunk_captions", o.chunk_captions},
                      {"cfg_number", runner->config().runtime.cfg_number},
                      {"heldout_scenes", o.heldout_scenes},
                      {"seed", o.seed},
                      {"store_dtype", absl::GetFlag(FLAGS_store_dtype)},
                      {"parameters", r.parameters},
                      {"plan_steps", r.plan_steps},
                      {"latent_std", r.latent_std},
                      {"heldout_loss_before", r.heldout_loss_before},
                      {"heldout_loss_after", r.heldout_loss_after},
                      {"caption_gain_before", r.caption_gain_before},
                      {"caption_gain_after", r.caption_gain_after},
                      {"colour_gain_before", r.colour_gain_before},
                      {"colour_gain_after", r.colour_gain_after},
                      {"first_chunk_colour_gain_before", r.first_chunk_colour_gain_before},
                      {"first_chunk_colour_gain_after", r.first_chunk_colour_gain_after},
                      {"first_chunk_direction_gain_before", r.first_chunk_direction_gain_before},
                      {"first_chunk_direction_gain_after", r.first_chunk_direction_gain_after},
                      {"seconds", r.seconds}};
  if (o.ema > 0) t["heldout_loss_no_ema"] = r.heldout_loss_raw;
  nlohmann::json by_level = nlohmann::json::array();
  for (const auto& [level, gain] : r.first_chunk_direction_gain_by_level) by_level.push_back({{"t", level}, {"gain", gain}});
  t["first_chunk_direction_gain_by_level_after"] = by_level;
  MAGI_RETURN_IF_ERROR(WriteTextFile(dir / "training.json", t.dump(2) + "\n"));
  std::printf("held-out velocity loss over all %d plan steps: %.6f before, %.6f after; caption gain (t2v, "
              "another scene's caption minus its own) %.6f before, %.6f after; colour gain (its caption recoloured "
              "minus its own) %.6f before, %.6f after (on the first chunk's steps %.6f, %.6f); direction gain on "
              "the first chunk's steps (its caption with left and right swapped minus its own) %.6f before, %.6f "
              "after; latent std %.3f; %lld parameters; %.1f s\n",
              r.plan_steps, r.heldout_loss_before, r.heldout_loss_after, r.caption_gain_before, r.caption_gain_after,
              r.colour_gain_before, r.colour_gain_after, r.first_chunk_colour_gain_before,
              r.first_chunk_colour_gain_after, r.first_chunk_direction_gain_before, r.first_chunk_direction_gain_after,
              r.latent_std, static_cast<long long>(r.parameters), r.seconds);
  std::printf("direction gain after, by chunk 0's noise level (t, 1 clean):");
  for (const auto& [level, gain] : r.first_chunk_direction_gain_by_level) std::printf(" %.3f:%.6f", level, gain);
  std::printf("\n");
  return absl::OkStatus();
}

}  // namespace

int RunDit(const std::string& out, int log_every) {
  const absl::StatusOr<at::ScalarType> store = StoreDtype();
  if (!store.ok()) return Fail(store.status());
  magi::DitTrainOptions o;
  o.steps = Or(absl::GetFlag(FLAGS_steps), 1000);
  o.batch = Or(absl::GetFlag(FLAGS_batch), 4);
  o.size = absl::GetFlag(FLAGS_size);
  o.chunks = absl::GetFlag(FLAGS_chunks);
  o.scenes = Or(absl::GetFlag(FLAGS_scenes), 512);
  o.learning_rate = Or(absl::GetFlag(FLAGS_lr), 5e-4);
  o.v2v_fraction = absl::GetFlag(FLAGS_v2v_fraction);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.workers = absl::GetFlag(FLAGS_threads);
  o.late_weight = absl::GetFlag(FLAGS_late_weight);
  o.object_weight = absl::GetFlag(FLAGS_object_weight);
  o.ema = absl::GetFlag(FLAGS_ema);
  o.caption_dropout = absl::GetFlag(FLAGS_caption_dropout);
  o.first_chunk_share = absl::GetFlag(FLAGS_first_chunk_share);
  o.first_chunk_max_t = absl::GetFlag(FLAGS_first_chunk_max_t);
  o.mirror_pairs = absl::GetFlag(FLAGS_mirror_pairs);
  o.single_object_share = absl::GetFlag(FLAGS_single_object_share);
  o.chunk_captions = absl::GetFlag(FLAGS_chunk_captions);
  o.heldout_scenes = absl::GetFlag(FLAGS_heldout);
  for (const char* flag : {"--init", "--vae"}) {
    const std::string dir = flag[2] == 'i' ? absl::GetFlag(FLAGS_init) : absl::GetFlag(FLAGS_vae);
    std::error_code ec;
    if (!dir.empty() && !fs::is_directory(dir, ec)) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(flag, ": '", dir, "' is not a folder")));
    }
  }
  if (const int cfg = absl::GetFlag(FLAGS_cfg_number); cfg != 0 && cfg != 1 && cfg != 3) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--cfg_number: must be 1 or 3 (or 0: the set's), got ", cfg)));
  }
  if (const int layers = absl::GetFlag(FLAGS_layers); layers != 0 && (layers < 1 || layers > 16)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--layers: must be in [1, 16] (or 0), got ", layers)));
  }
  if (absl::GetFlag(FLAGS_layers) != 0 && !absl::GetFlag(FLAGS_init).empty()) {
    return Fail(absl::InvalidArgumentError("--layers: only for a new set; --init keeps its set's DiT"));
  }
  if (absl::GetFlag(FLAGS_init).empty() && absl::GetFlag(FLAGS_vae).empty()) {
    return Fail(absl::InvalidArgumentError("--vae: required without --init (the trained VAE folder of the new set)"));
  }
  {
    const magi::RuntimeConfig tiny = magi::TinyModelSetConfig().runtime;
    if (absl::Status s = magi::CheckDitTrainOptions(o, tiny.chunk_width * tiny.temporal_downsample_factor); !s.ok()) {
      return Fail(s);
    }
  }
  // Built beside --out and renamed onto it at the end: a failed run leaves --out as it was.
  const fs::path target = fs::absolute(out).lexically_normal();
  const fs::path scratch = target.parent_path() / absl::StrCat(".", target.filename().string(), ".tmp-", ::getpid());
  absl::Status s = TrainSet(scratch, o, *store, log_every);
  std::error_code ec;
  if (!s.ok()) {
    fs::remove_all(scratch, ec);
    return Fail(s);
  }
  fs::remove_all(target, ec);
  fs::rename(scratch, target, ec);
  if (ec) {
    return Fail(absl::InternalError(absl::StrCat("cannot rename '", scratch.string(), "' to '", target.string(), "': ",
                                                 ec.message())));
  }
  std::printf("model set written to %s\n", target.string().c_str());
  return 0;
}

int RunRoundtrip(const std::string& out) {
  namespace physics = magi::physics;
  const std::string vae_dir = absl::GetFlag(FLAGS_vae);
  if (vae_dir.empty()) return Fail(absl::InvalidArgumentError("--vae: required (the VAE folder to round-trip through)"));
  physics::EvalOptions e;
  e.scenes = Or(absl::GetFlag(FLAGS_scenes), 20);
  e.seed = absl::GetFlag(FLAGS_seed);
  e.size = absl::GetFlag(FLAGS_size);
  if (absl::Status s = physics::CheckEvalOptions(e); !s.ok()) return Fail(s);
  const double noise = absl::GetFlag(FLAGS_latent_noise);
  if (!(noise >= 0 && noise <= 10)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--latent_noise: must be in [0, 10], got ", noise)));
  }
  at::Generator gen = at::detail::createCPUGenerator(e.seed);
  magi::ViTVae::Options vo;
  vo.compute = magi::VaeCompute::kFloat32;
  auto vae = magi::ViTVae::LoadFolder(vae_dir, vo);
  if (!vae.ok()) return Fail(absl::Status(vae.status().code(), absl::StrCat("--vae: ", vae.status().message())));
  // The pipeline's codec (its encode and decode tiles, 12 frames at 24 fps): what serving does.
  const magi::VaeCodec codec = magi::VaeCodec::ForPipeline(vae->get(), 24, 1.0);
  at::NoGradGuard no_grad;
  for (int i = 0; i < e.scenes; ++i) {
    const physics::Scene scene = physics::MakeScene(physics::EvalSceneSeed(e.seed, i));
    auto rgb = physics::RenderSceneRgb(scene, e.size, e.frames);
    if (!rgb.ok()) return Fail(rgb.status());
    at::Tensor video = at::empty({1, 3, e.frames, e.size, e.size}, at::kByte);
    for (int f = 0; f < e.frames; ++f) {
      const magi::RgbFrame& fr = (*rgb)[static_cast<size_t>(f)];
      at::Tensor hwc = at::from_blob(const_cast<uint8_t*>(fr.rgb24.data()), {e.size, e.size, 3}, at::kByte);
      video.select(0, 0).select(1, f).copy_(hwc.permute({2, 0, 1}));
    }
    auto z = codec.Encode(video);
    if (!z.ok()) return Fail(z.status());
    if (noise > 0) *z = *z + at::randn(z->sizes(), gen, z->options()) * noise;
    auto decoded = codec.DecodeLatentToUint8(*z);  // [T, 3, H, W]
    if (!decoded.ok()) return Fail(decoded.status());
    std::vector<magi::RgbFrame> frames;
    for (int64_t f = 0; f < decoded->size(0); ++f) {
      at::Tensor hwc = decoded->select(0, f).permute({1, 2, 0}).contiguous();
      magi::RgbFrame fr(e.size, e.size);
      std::memcpy(fr.rgb24.data(), hwc.data_ptr<uint8_t>(), fr.rgb24.size());
      frames.push_back(std::move(fr));
    }
    const fs::path dir = fs::path(out) / absl::StrCat("scene_", i);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Fail(absl::UnavailableError(absl::StrCat("--out: cannot create '", dir.string(), "': ", ec.message())));
    if (absl::Status s = physics::WriteFrameFolder(dir.string(), frames); !s.ok()) return Fail(s);
  }
  std::printf("%d scenes (eval seed %llu) round-tripped through %s into %s\n", e.scenes,
              static_cast<unsigned long long>(e.seed), vae_dir.c_str(), out.c_str());
  return 0;
}
