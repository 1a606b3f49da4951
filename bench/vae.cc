// bench_vae: VAE decode time per emitted chunk against the DiT time per chunk, measured in
// the same run on a medium configuration.
//
// Chunk geometry: one latent chunk of 6 x 24 x 40 (a 24-frame 192 x 320 video chunk), which
// is exactly the DiT window chunk of bench_dit_forward (6 x 12 x 20 tokens).
//  * VAE: medium ViTVAE (default embed 512, depth 8, 8 heads, MLP x4; the released one is
//    1024 / 24 / 16), random weights, the pipeline's tiling (256-pixel tiles, fps 24 ->
//    3-latent-frame tiles), DecodeChunk = tiled decode + uint8 conversion.
//  * DiT: hidden 1024, 8 layers, 8 heads / 4 groups, GLU, random weights; one forward of a
//    full window of 4 chunks. At steady state the engine emits one chunk per stage of
//    num_steps / window_size steps, each step = cfg passes over the window, so
//    DiT time per chunk = forward time x num_steps / 4 x cfg passes (printed for the
//    distilled 16-step cfg-1 and the base 64-step cfg-3 settings).
// Prints both times, their ratio, and the analytic FLOPs of each.
// Usage: bench_vae [--threads N] [--reps N] [--vae-embed N] [--vae-depth N] [--vae-heads N]
//                  [--dit-layers N] [--dtype fp32|bf16|both]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "bench/medium_dit.h"
#include "worker/model/checkpoint.h"
#include "worker/model/dit.h"
#include "worker/model/random_checkpoint.h"
#include "worker/vae/random_vae_checkpoint.h"
#include "worker/vae/vae_codec.h"
#include "worker/vae/vae_tiling.h"
#include "worker/vae/vit_vae.h"

namespace magi {
namespace {

constexpr int kCaptionValid = 100;
constexpr int kChunks = kMediumChunks, kChunkFrames = kMediumChunkFrames, kTokH = kMediumTokH, kTokW = kMediumTokW;

// Multiply-add FLOPs (x2) of the ViT decoder on one tile of n tokens (+ cls).
double VaeTileFlops(const VaeConfig& c, int64_t tokens) {
  const double n = static_cast<double>(tokens + 1), C = static_cast<double>(c.embed_dim);
  const double hid = static_cast<double>(c.mlp_hidden());
  const double per_block = 2 * n * (3 * C * C + C * C + 2 * C * hid) + 4 * n * n * C;
  return c.depth * per_block + 2 * n * c.z_chans * C;
}

double VaeDecodeFlops(const VaeConfig& c, const VaeTilePlan& plan) {
  double f = 0;
  for (const VaeTile& t : plan.tiles) f += VaeTileFlops(c, t.t_len * t.h_len * t.w_len);
  return f;
}

int Run(int argc, char** argv) {
  int threads = 2, reps = 1, dit_layers = 8;
  VaeConfig vc = ReleasedVaeConfig();
  vc.embed_dim = 512;
  vc.depth = 8;
  vc.num_heads = 8;
  std::string dtypes = "fp32";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (a == "--threads")
      threads = v;
    else if (a == "--reps")
      reps = v;
    else if (a == "--vae-embed")
      vc.embed_dim = v;
    else if (a == "--vae-depth")
      vc.depth = v;
    else if (a == "--vae-heads")
      vc.num_heads = v;
    else if (a == "--dit-layers")
      dit_layers = v;
    else if (a == "--dtype")
      dtypes = argv[i + 1];
    else {
      std::fprintf(stderr, "bench_vae: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (threads < 1 || reps < 1 || dit_layers < 1 || (dtypes != "fp32" && dtypes != "bf16" && dtypes != "both")) {
    std::fprintf(stderr, "bench_vae: --threads/--reps/--dit-layers must be >= 1, --dtype fp32|bf16|both\n");
    return 2;
  }
  at::set_num_threads(threads);
  const std::string folder =
      (std::filesystem::temp_directory_path() / ("magi_bench_vae_" + std::to_string(::getpid()))).string();
  if (auto s = WriteRandomVaeFolder(vc, folder); !s.ok()) {
    std::fprintf(stderr, "bench_vae: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  const int64_t lat_t = kChunkFrames, lat_h = 2 * kTokH, lat_w = 2 * kTokW;
  auto plan = PlanTiledDecode(lat_t, lat_h, lat_w, VaeTileOptions::ForPipeline(24), vc.patch_size, vc.patch_length);
  const double vae_flops = VaeDecodeFlops(vc, *plan);
  std::printf(
      "bench_vae: chunk = latent %lldx%lldx%lld -> %lld frames of %lldx%lld; VAE embed %lld depth %lld heads %lld "
      "(%zu decode tiles, %.1f GFLOP); DiT hidden 1024, %d layers, window %d chunks; %d threads, %d reps\n",
      (long long)lat_t, (long long)lat_h, (long long)lat_w, (long long)(lat_t * vc.patch_length),
      (long long)(lat_h * vc.patch_size), (long long)(lat_w * vc.patch_size), (long long)vc.embed_dim,
      (long long)vc.depth, (long long)vc.num_heads, plan->tiles.size(), vae_flops / 1e9, dit_layers, kChunks, threads,
      reps);

  for (const bool bf16 : {false, true}) {
    if ((bf16 && dtypes == "fp32") || (!bf16 && dtypes == "bf16")) continue;
    const char* name = bf16 ? "bf16" : "fp32";
    // ---- VAE decode of one chunk ----
    ViTVae::Options vo;
    vo.compute = bf16 ? VaeCompute::kBFloat16 : VaeCompute::kFloat32;
    auto vae = ViTVae::LoadFolder(folder, vo);
    if (!vae.ok()) {
      std::fprintf(stderr, "bench_vae: %s\n", std::string(vae.status().message()).c_str());
      return 1;
    }
    const VaeCodec codec = VaeCodec::ForPipeline(vae->get(), 24, 0.18215);
    at::manual_seed(1);
    const at::Tensor chunk = at::randn({1, 16, lat_t, lat_h, lat_w}) * 0.18215;
    auto warm = codec.DecodeChunk(chunk, 0, ChunkLayout{kChunkFrames, 0});
    if (!warm.ok()) {
      std::fprintf(stderr, "bench_vae: %s\n", std::string(warm.status().message()).c_str());
      return 1;
    }
    double t0 = NowSeconds();
    for (int r = 0; r < reps; ++r) (void)codec.DecodeChunk(chunk, 0, ChunkLayout{kChunkFrames, 0});
    const double vae_sec = (NowSeconds() - t0) / reps;
    vae->reset();

    // ---- DiT forward of a full window ----
    const ModelConfig m = MediumDitConfig(dit_layers, bf16 ? ParamsDtype::kBFloat16 : ParamsDtype::kFloat32);
    const std::string path = folder + "/dit.safetensors";
    if (auto s = WriteRandomDitCheckpoint(m, path); !s.ok()) {
      std::fprintf(stderr, "bench_vae: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    auto ckpt = Checkpoint::Open(path);
    auto dit = ckpt.ok() ? DitModel::Load(m, **ckpt, {}) : absl::StatusOr<std::unique_ptr<DitModel>>(ckpt.status());
    if (!dit.ok()) {
      std::fprintf(stderr, "bench_vae: %s\n", std::string(dit.status().message()).c_str());
      return 1;
    }
    const DitForwardArgs args = MediumWindowArgs(m, kCaptionValid);
    if (auto w = (*dit)->Forward(args); !w.ok()) {
      std::fprintf(stderr, "bench_vae: %s\n", std::string(w.status().message()).c_str());
      return 1;
    }
    t0 = NowSeconds();
    for (int r = 0; r < reps; ++r) (void)(*dit)->Forward(args);
    const double fwd_sec = (NowSeconds() - t0) / reps;
    const int64_t S = int64_t{kChunks} * kChunkFrames * kTokH * kTokW, M = S / kChunks;
    const double dit_flops = DitModel::ForwardFlops(m, S, (M * (1 + 2 + 3 + 4)) / kChunks, kCaptionValid, kChunks);
    dit->reset();
    ckpt->reset();

    const double distill = fwd_sec * (16.0 / kChunks) * 1;  // 16 steps, cfg 1: 4 forwards per chunk
    const double base = fwd_sec * (64.0 / kChunks) * 3;     // 64 steps, cfg 3: 48 forwards per chunk
    std::printf("%s: VAE decode %.3f s/chunk (%.1f GFLOP/s); DiT window forward %.3f s (%.1f GFLOP, %.1f GFLOP/s)\n",
                name, vae_sec, vae_flops / vae_sec / 1e9, fwd_sec, dit_flops / 1e9, dit_flops / fwd_sec / 1e9);
    std::printf(
        "%s: DiT per chunk: %.3f s (16 steps, cfg 1) -> VAE/DiT = %.3f; %.3f s (64 steps, cfg 3) -> "
        "VAE/DiT = %.3f\n",
        name, distill, vae_sec / distill, base, vae_sec / base);
  }
  std::filesystem::remove_all(folder);
  return 0;
}

}  // namespace
}  // namespace magi

int main(int argc, char** argv) { return magi::Run(argc, argv); }
