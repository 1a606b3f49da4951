// magi-dit-check: loads a DiT checkpoint with its config.json and runs one forward over a
// random latent window, printing what it loaded and how long it took. The quickest answer
// to "do these weights load and run here?".
//
//   magi-dit-check --config CONFIG.json --checkpoint PATH [--chunks N] [--height H --width W]
//   magi-dit-check --model_dir DIR [--chunks N] [--height H --width W]
//       a served model folder (docs/models.md): DIR/config.json (parsed and checked for
//       consistency as the worker does), the DiT checkpoint its runtime_config.load names
//       (relative paths are relative to DIR, as magi-worker resolves them), the T5 folder
//       (config.json, spiece.model, safetensors), the VAE folder (config.json, safetensors) and
//       special_tokens.npz when serving_config enables a token.
//       The deploy's model-fetch Job runs this before it publishes a folder.
//   magi-dit-check --write-tiny DIR     writes a tiny random model (config.json + model.safetensors)
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
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
               "       magi-dit-check --model_dir DIR [--chunks N] [--height H] [--width W]\n"
               "       magi-dit-check --write-tiny DIR\n");
  return 2;
}

namespace fs = std::filesystem;

// A path from config.json, resolved as magi-worker resolves it (relative to the model folder).
std::string Resolve(const fs::path& base, const std::string& p) {
  const fs::path q(p);
  return (q.is_absolute() ? q : base / q).string();
}

bool HasWeights(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) return true;
  }
  return false;
}

// The files magi-worker --runner=model opens besides the DiT; "" when all are there, else
// the first one missing, named with the config field that points at it.
std::string CheckModelFolder(const fs::path& dir, const magi::MagiConfig& c) {
  const std::string source = (dir / "config.json").string();
  for (auto [field, value] : {std::pair<const char*, const std::string*>{"runtime_config.load", &c.runtime.load},
                              {"runtime_config.t5_pretrained", &c.runtime.t5_pretrained},
                              {"runtime_config.vae_pretrained", &c.runtime.vae_pretrained}}) {
    if (value->empty()) return source + ": " + field + " is empty; magi-worker --runner=model needs it";
  }
  std::error_code ec;
  const fs::path t5 = Resolve(dir, c.runtime.t5_pretrained);
  const fs::path vae = Resolve(dir, c.runtime.vae_pretrained);
  for (const fs::path& f : {t5 / "config.json", t5 / "spiece.model", vae / "config.json"}) {
    if (!fs::is_regular_file(f, ec)) return source + ": " + f.string() + " does not exist (docs/models.md)";
  }
  if (!HasWeights(t5)) {
    return source + ": runtime_config.t5_pretrained " + t5.string() +
           " holds no *.safetensors (the released .bin shards need converting once; docs/t5.md)";
  }
  if (!HasWeights(vae)) return source + ": runtime_config.vae_pretrained " + vae.string() + " holds no *.safetensors";
  if (c.serving.special_tokens.any() && !fs::is_regular_file(dir / "special_tokens.npz", ec)) {
    return source + ": serving_config enables special tokens (PAD_HQ and PAD_DURATION unless turned off) but " +
           (dir / "special_tokens.npz").string() + " does not exist";
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, checkpoint, tiny_dir, model_dir;
  int chunks = 2, height = -1, width = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    std::string v = argv[++i];
    if (a == "--config") config_path = v;
    else if (a == "--checkpoint") checkpoint = v;
    else if (a == "--write-tiny") tiny_dir = v;
    else if (a == "--model_dir") model_dir = v;
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
  if (!model_dir.empty()) {
    if (!config_path.empty() || !checkpoint.empty()) return Fail("--model_dir replaces --config and --checkpoint");
    auto folder = magi::LoadMagiConfig((fs::path(model_dir) / "config.json").string());
    if (!folder.ok()) return Fail(std::string(folder.status().message()));
    if (auto v = magi::ValidateMagiConfig(*folder); !v.ok()) return Fail(std::string(v.message()));
    const std::string missing = CheckModelFolder(model_dir, *folder);
    if (!missing.empty()) return Fail(missing);
    config_path = (fs::path(model_dir) / "config.json").string();
    checkpoint = Resolve(model_dir, folder->runtime.load);
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
