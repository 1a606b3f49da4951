// magi-train-tiny: trains the tiny model set on the synthetic physics world (issue #17).
//
//   magi-train-tiny vae --out DIR [--init DIR] [--steps N] [--batch N] [--frames N] [--size N]
//                       [--lr X] [--kl_weight X] [--seed S] [--threads N] [--log_every N]
//
// `vae`: the tiny set's ViT VAE (worker/runner/tiny_model.h TinyVaeConfig), from random
// weights drawn from --seed (or the VAE folder --init), trained on world clips
// (tools/train_tiny/train_vae.h) and written to --out as a released-layout VAE folder
// (config.json + diffusion_pytorch_model.safetensors) that ViTVae::LoadFolder reads. Prints
// the loss as it goes and the held-out reconstruction error before and after.
// Exit status: 0 trained and written, 1 failed, 2 bad flags.
#include <ATen/Parallel.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "tools/train_tiny/train_vae.h"
#include "worker/runner/tiny_model.h"
#include "worker/vae/random_vae_checkpoint.h"

ABSL_FLAG(std::string, out, "", "output folder (created; an existing VAE there is replaced once training succeeds)");
ABSL_FLAG(std::string, init, "", "start from this VAE folder instead of random tiny weights");
ABSL_FLAG(int, steps, 400, "optimiser steps, in [0, 1000000]");
ABSL_FLAG(int, batch, 8, "clips per step, in [1, 256]");
ABSL_FLAG(int, frames, 12, "frames per clip: a multiple of 4 in [4, 96]");
ABSL_FLAG(int, size, 64, "clip width and height: a multiple of 16 in [16, 256]");
ABSL_FLAG(double, lr, 1e-3, "Adam learning rate, in [1e-8, 1]");
ABSL_FLAG(double, kl_weight, 1e-6, "weight of the posterior's KL term, in [0, 1]");
ABSL_FLAG(uint64_t, seed, 1, "seed of the random start, the training scenes and the posterior noise");
ABSL_FLAG(int, threads, 2, "ATen threads, in [1, 256]");
ABSL_FLAG(int, log_every, 25, "print the loss every N steps (0: only the summary)");

namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "magi-train-tiny: %s\n", std::string(s.message()).c_str());
  return absl::IsInvalidArgument(s) ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2 || std::string(args[1]) != "vae") {
    std::fprintf(stderr,
                 "usage: magi-train-tiny vae --out DIR [--init DIR] [--steps N] [--batch N] [--frames N] [--size N] "
                 "[--lr X] [--kl_weight X] [--seed S] [--threads N] [--log_every N]\n");
    return 2;
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return Fail(absl::InvalidArgumentError("--out: required (the VAE folder to write)"));
  const int threads = absl::GetFlag(FLAGS_threads);
  if (threads < 1 || threads > 256) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--threads: must be in [1, 256], got ", threads)));
  }
  const int log_every = absl::GetFlag(FLAGS_log_every);
  if (log_every < 0) return Fail(absl::InvalidArgumentError(absl::StrCat("--log_every: must be >= 0, got ", log_every)));
  at::set_num_threads(threads);

  magi::VaeTrainOptions o;
  o.steps = absl::GetFlag(FLAGS_steps);
  o.batch = absl::GetFlag(FLAGS_batch);
  o.frames = absl::GetFlag(FLAGS_frames);
  o.size = absl::GetFlag(FLAGS_size);
  o.learning_rate = absl::GetFlag(FLAGS_lr);
  o.kl_weight = absl::GetFlag(FLAGS_kl_weight);
  o.seed = absl::GetFlag(FLAGS_seed);
  if (o.seed == 0) return Fail(absl::InvalidArgumentError("--seed: must be >= 1, got 0"));
  o.on_step = [&](int step, double loss, double mse) {
    if (log_every > 0 && (step % log_every == 0 || step == 1)) {
      std::printf("step %d/%d: loss %.6f, reconstruction MSE %.6f\n", step, o.steps, loss, mse);
      std::fflush(stdout);
    }
  };

  // The start: --init, or the tiny set's VAE with random weights from --seed (written to a
  // scratch folder: --out is touched only once training has succeeded).
  std::string start = absl::GetFlag(FLAGS_init);
  std::filesystem::path scratch;
  if (start.empty()) {
    scratch = std::filesystem::temp_directory_path() / absl::StrCat("magi-train-tiny-start-", ::getpid());
    if (absl::Status s = magi::WriteRandomVaeFolder(magi::TinyVaeConfig(), scratch.string(), o.seed); !s.ok()) {
      return Fail(s);
    }
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
  if (absl::Status s = magi::WriteVaeFolder((*vae)->config(), weights, out); !s.ok()) return Fail(s);
  std::printf("held-out reconstruction MSE: %.6f before, %.6f after (%.1fx lower); %.1f s; written to %s\n",
              trained->heldout_mse_before, trained->heldout_mse_after,
              trained->heldout_mse_before / std::max(trained->heldout_mse_after, 1e-12), trained->seconds, out.c_str());
  return 0;
}
