// bench_dit_forward: DiT forward throughput and load memory on a medium configuration.
//
// Medium config: hidden 1024, 8 layers, 8 heads / 4 groups (head dim 128), GLU MLP,
// a window of 4 chunks of 6x12x20 tokens (5760 tokens), chunk j attending to chunks
// [0, j] as in the engine's first full window. For fp32 and bf16 it prints:
//   - achieved GFLOP/s of the forward (analytic FLOPs / wall time),
//   - at::mm GFLOP/s on the same GEMM shapes measured in the same run, and their ratio,
//   - peak RSS growth during load divided by the checkpoint's bytes.
// Usage: bench_dit_forward [--threads N] [--reps N] [--layers N]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "bench/bench_util.h"
#include "bench/medium_dit.h"
#include "worker/model/checkpoint.h"
#include "worker/model/dit.h"
#include "worker/model/random_checkpoint.h"

namespace magi {
namespace {

constexpr int kCaptionValid = 100;
constexpr int kChunks = kMediumChunks, kChunkFrames = kMediumChunkFrames, kTokH = kMediumTokH, kTokW = kMediumTokW;

// at::mm rate on the forward's dense GEMMs (tokens x in -> out), same dtype, same run.
double GemmGflops(const ModelConfig& m, at::ScalarType dtype, int reps) {
  const int64_t S = int64_t{kChunks} * kChunkFrames * kTokH * kTokW, D = m.hidden_size;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {D, m.query_dim()}, {D, m.query_dim()}, {D, m.kv_dim()}, {D, m.kv_dim()},
      {2 * m.query_dim(), D}, {D, m.fc1_out()}, {m.ffn_hidden_size, D}};
  double flops = 0, seconds = 0;
  for (const auto& [in, out] : shapes) {
    at::Tensor x = at::randn({S, in}).to(dtype), w = at::randn({in, out}).to(dtype);
    at::mm(x, w);  // warm-up
    const double t0 = NowSeconds();
    for (int r = 0; r < reps; ++r) at::mm(x, w);
    seconds += NowSeconds() - t0;
    flops += 2.0 * S * in * out * reps;
  }
  return flops / seconds / 1e9;
}

int Run(int argc, char** argv) {
  int threads = 2, reps = 2, layers = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--layers")) layers = std::atoi(argv[i + 1]);
  }
  at::set_num_threads(threads);
  std::printf("bench_dit_forward: hidden 1024, %d layers, 8 heads / 4 groups, GLU, window 4 x (6x12x20) tokens, "
              "%d threads, %d reps\n", layers, threads, reps);
  for (ParamsDtype dt : {ParamsDtype::kFloat32, ParamsDtype::kBFloat16}) {
    const char* name = dt == ParamsDtype::kFloat32 ? "fp32" : "bf16";
    const ModelConfig m = MediumDitConfig(layers, dt);
    const std::string path =
        (std::filesystem::temp_directory_path() / ("magi_bench_dit_" + std::to_string(::getpid()) + ".safetensors"))
            .string();
    if (auto s = WriteRandomDitCheckpoint(m, path); !s.ok()) {
      std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
      return 1;
    }
    const double ckpt_bytes = static_cast<double>(std::filesystem::file_size(path));
    ResetPeakRss();
    const int64_t rss0 = ProcStatusKb("VmRSS");
    auto ckpt = Checkpoint::Open(path);
    auto model = ckpt.ok() ? DitModel::Load(m, **ckpt, {}) : absl::StatusOr<std::unique_ptr<DitModel>>(ckpt.status());
    if (!model.ok()) {
      std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
      return 1;
    }
    // A one-chunk forward over a tiny grid reads every weight page with negligible
    // activations: the RSS growth up to here is what loading costs.
    DitForwardArgs touch = MediumWindowArgs(m, kCaptionValid);
    touch.x = at::randn({1, 16, kChunkFrames, 4, 4});
    touch.t = touch.t.narrow(1, 0, 1);
    touch.y = touch.y.narrow(0, 0, 1);
    touch.xattn_mask = touch.xattn_mask.narrow(0, 0, 1);
    touch.kv_range = at::tensor({0, kChunkFrames * 4}, at::kInt).view({1, 2});
    touch.denoising_range_num = 1;
    if (auto w = (*model)->Forward(touch); !w.ok()) {
      std::fprintf(stderr, "%s\n", std::string(w.status().message()).c_str());
      return 1;
    }
    const int64_t peak_load_kb = ProcStatusKb("VmHWM") - rss0;
    DitForwardArgs args = MediumWindowArgs(m, kCaptionValid);
    ResetPeakRss();
    const int64_t rss1 = ProcStatusKb("VmRSS");
    if (auto w = (*model)->Forward(args); !w.ok()) {
      std::fprintf(stderr, "%s\n", std::string(w.status().message()).c_str());
      return 1;
    }
    const int64_t activations_kb = ProcStatusKb("VmHWM") - rss1;
    const int64_t S = int64_t{kChunks} * kChunkFrames * kTokH * kTokW;
    const int64_t M = S / kChunks;
    const double flops = DitModel::ForwardFlops(m, S, (M * (1 + 2 + 3 + 4)) / kChunks, kCaptionValid, kChunks);
    const double t0 = NowSeconds();
    for (int r = 0; r < reps; ++r) (void)(*model)->Forward(args);
    const double sec = (NowSeconds() - t0) / reps;
    const double achieved = flops / sec / 1e9;
    const double gemm = GemmGflops(m, dt == ParamsDtype::kFloat32 ? at::kFloat : at::kBFloat16, 3);
    std::printf("%s: forward %.3f s, %.1f GFLOP -> %.1f GFLOP/s; at::mm on the same GEMMs %.1f GFLOP/s; "
                "ratio %.2f (target >= 0.8 for fp32)\n",
                name, sec, flops / 1e9, achieved, gemm, achieved / gemm);
    std::printf("%s: checkpoint %.1f MB; peak RSS growth during load (all weight pages read) %.1f MB = %.2f x "
                "checkpoint (target <= 1.1); one window forward's activations %.1f MB more\n",
                name, ckpt_bytes / 1e6, peak_load_kb / 1e3, peak_load_kb * 1e3 / ckpt_bytes, activations_kb / 1e3);
    model->reset();
    ckpt->reset();
    std::filesystem::remove(path);
  }
  return 0;
}

}  // namespace
}  // namespace magi

int main(int argc, char** argv) { return magi::Run(argc, argv); }
