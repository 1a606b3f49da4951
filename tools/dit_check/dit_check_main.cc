// magi-dit-check: loads a DiT checkpoint with its config.json and runs one forward over a
// random latent window, printing what it loaded and how long it took. The quickest answer
// to "do these weights load and run here?".
//
//   magi-dit-check --config CONFIG.json --checkpoint PATH [--chunks N] [--height H --width W]
//   magi-dit-check --write-tiny DIR     writes a tiny random model (config.json + model.safetensors)
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "bench/bench_util.h"
#include "worker/model/checkpoint.h"
#include "worker/model/dit.h"
#include "worker/model/random_checkpoint.h"

namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "magi-dit-check: %s\n", msg.c_str());
  return 1;
}

int Usage() {
  std::fprintf(stderr,
               "usage: magi-dit-check --config CONFIG.json --checkpoint PATH [--chunks N] [--height H] [--width W]\n"
               "       magi-dit-check --write-tiny DIR\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, checkpoint, tiny_dir;
  int chunks = 2, height = -1, width = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    std::string v = argv[++i];
    if (a == "--config") config_path = v;
    else if (a == "--checkpoint") checkpoint = v;
    else if (a == "--write-tiny") tiny_dir = v;
    else if (a == "--chunks") chunks = std::atoi(v.c_str());
    else if (a == "--height") height = std::atoi(v.c_str());
    else if (a == "--width") width = std::atoi(v.c_str());
    else return Usage();
  }
  if (!tiny_dir.empty()) {
    std::filesystem::create_directories(tiny_dir);
    magi::MagiConfig c = magi::TinyMagiConfig();
    std::ofstream(tiny_dir + "/config.json") << magi::MagiConfigToJson(c) << "\n";
    auto s = magi::WriteRandomDitCheckpoint(c.model, tiny_dir + "/model.safetensors");
    if (!s.ok()) return Fail(std::string(s.message()));
    std::printf("wrote %s/config.json and %s/model.safetensors\n", tiny_dir.c_str(), tiny_dir.c_str());
    return 0;
  }
  if (config_path.empty() || checkpoint.empty()) return Usage();
  if (chunks < 1 || chunks > 64) return Fail("--chunks must be in [1, 64]");
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  auto config = magi::LoadMagiConfig(config_path);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  const magi::ModelConfig& m = config->model;
  if (height < 0) height = config->runtime.video_size_h / 8;
  if (width < 0) width = config->runtime.video_size_w / 8;
  if (height < 2 * m.patch_size || width < 2 * m.patch_size || height % m.patch_size || width % m.patch_size) {
    return Fail("--height and --width (latent pixels) must be multiples of patch_size and at least 2 patches");
  }
  const double t0 = magi::NowSeconds();
  auto ckpt = magi::Checkpoint::Open(checkpoint);
  if (!ckpt.ok()) return Fail(std::string(ckpt.status().message()));
  magi::DitModel::Options opts;
  opts.distill = config->engine.distill;
  auto model = magi::DitModel::Load(m, **ckpt, opts);
  if (!model.ok()) return Fail(std::string(model.status().message()));
  const double t_load = magi::NowSeconds() - t0;
  const int cw = config->runtime.chunk_width;
  const int64_t M = int64_t{cw} * (height / m.patch_size) * (width / m.patch_size);
  magi::DitForwardArgs a;
  at::manual_seed(0);
  a.x = at::randn({1, m.latent_channels(), chunks * cw, height, width});
  a.t = at::linspace(0.9, 0.1, chunks).view({1, chunks});
  a.y = at::randn({chunks, 1, m.caption_max_length, m.caption_channels});
  a.xattn_mask = at::zeros({chunks, 1, m.caption_max_length}, at::kLong);
  a.xattn_mask.narrow(2, 0, std::min(m.caption_max_length, 8)).fill_(1);
  a.caption_dropout_mask = at::zeros({1}, at::kBool);
  a.kv_range = at::zeros({chunks, 2}, at::kInt);
  for (int j = 0; j < chunks; ++j) a.kv_range[j][1] = (j + 1) * M;
  a.denoising_range_num = chunks;
  a.num_steps = config->runtime.num_steps;
  const double t1 = magi::NowSeconds();
  auto out = (*model)->Forward(a);
  if (!out.ok()) return Fail(std::string(out.status().message()));
  const double t_fwd = magi::NowSeconds() - t1;
  std::printf("model: %d layers, hidden %d, %d heads / %d groups, %s MLP, params %s, %.1f MB of weights\n",
              m.num_layers, m.hidden_size, m.num_attention_heads, m.num_query_groups,
              m.gated_linear_unit ? "SwiGLU" : "GELU", m.params_dtype == magi::ParamsDtype::kFloat32 ? "fp32" : "bf16",
              (*model)->weight_bytes() / 1e6);
  std::printf("loaded %s in %.2f s\n", (*ckpt)->description().c_str(), t_load);
  std::printf("forward: %d chunks x %ld tokens -> velocity [%ld, %ld, %ld, %ld, %ld], mean %.4f, std %.4f, in %.3f s\n",
              chunks, static_cast<long>(M), static_cast<long>(out->size(0)), static_cast<long>(out->size(1)),
              static_cast<long>(out->size(2)), static_cast<long>(out->size(3)), static_cast<long>(out->size(4)),
              out->mean().item<double>(), out->std().item<double>(), t_fwd);
  return at::isfinite(*out).all().item<bool>() ? 0 : Fail("forward produced non-finite values");
}
