// bench_dit_forward: DiT forward throughput and load memory on a medium configuration.
//
// Medium config: hidden 1024, 8 layers, 8 heads / 4 groups (head dim 128), GLU MLP,
// a window of 4 chunks of 6x12x20 tokens (5760 tokens), chunk j attending to chunks
// [0, j] as in the engine's first full window. It prints the BLAS libraries loaded, and for
// fp32 and bf16:
//   - achieved GFLOP/s of the forward (analytic FLOPs / wall time),
//   - at::mm GFLOP/s on the same GEMM shapes measured in the same run, and their ratio (the
//     two alternate, best of --reps each, so a shared machine's load hits both alike),
//   - the window's self-attention alone: the fused kernel per instruction-set build and the
//     unfused bmm + softmax path, in GFLOP/s and as a fraction of at::mm's rate,
//   - peak RSS growth during load divided by the checkpoint's bytes.
// Usage: bench_dit_forward [--threads N] [--reps N] [--layers N] [--shape medium|4.5b]
//                          [--device cpu|cuda[:N]] [--dtype both|fp32|bf16] [--attention 0|1]
//                          [--chunks 1..4] [--token_chunk_rows N]
//   --chunks N: a window of the first N chunks (1: the stream-first lead chunk's forward).
//   --attention 0: skip the attention-alone figures (e.g. to profile the forward alone).
//   --shape 4.5b: one MAGI-1 4.5B-shaped layer (hidden 3072, 24 heads / 8 groups, GELU MLP
//   12288, caption width 4096) over one 720p chunk (6 x 45 x 80 = 21,600 tokens), the shape
//   scripts/gpu_check.sh measures on a GPU; --layers defaults to 1 there.
//   --device cuda: weights and inputs on the GPU; times include a device synchronisation;
//   the RSS figures are then host-side only (reported, not targets).
#include <algorithm>
#include <cmath>
#include <dlfcn.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "bench/bench_util.h"
#include "bench/medium_dit.h"
#include "kernels/attention.h"
#include "kernels/flash_attention_cpu.h"
#include "worker/model/checkpoint.h"
#include "worker/model/device.h"
#include "worker/model/dit.h"
#include "worker/model/random_checkpoint.h"

namespace magi {
namespace {

constexpr int kCaptionValid = 100;

// The token grid of the measured window: chunks x (frames x tok_h x tok_w).
struct Window {
  int chunks = kMediumChunks, frames = kMediumChunkFrames, tok_h = kMediumTokH, tok_w = kMediumTokW;
  int64_t tokens() const { return int64_t{chunks} * frames * tok_h * tok_w; }
};

// MAGI-1 4.5B per-layer shape (spec parallel.md notation table).
ModelConfig FourPointFiveBLayers(int layers, ParamsDtype dtype) {
  ModelConfig m = MediumDitConfig(layers, dtype);
  m.hidden_size = 3072;
  m.ffn_hidden_size = 12288;
  m.num_attention_heads = 24;
  m.num_query_groups = 8;
  m.kv_channels = 128;
  m.gated_linear_unit = false;
  return m;
}

// The medium window's arguments on another grid (same caption, chunk j sees chunks [0, j]).
DitForwardArgs WindowArgs(const ModelConfig& m, const Window& w, c10::Device device) {
  DitForwardArgs a = MediumWindowArgs(m, kCaptionValid);
  a.x = at::randn({1, m.in_channels, w.chunks * w.frames, w.tok_h * 2, w.tok_w * 2});
  a.t = a.t.narrow(1, 0, w.chunks).contiguous();
  a.y = a.y.narrow(0, 0, w.chunks).contiguous();
  a.xattn_mask = a.xattn_mask.narrow(0, 0, w.chunks).contiguous();
  a.kv_range = at::zeros({w.chunks, 2}, at::kInt);
  const int64_t chunk_tokens = int64_t{w.frames} * w.tok_h * w.tok_w;
  for (int j = 0; j < w.chunks; ++j) a.kv_range[j][1] = (j + 1) * chunk_tokens;
  a.denoising_range_num = w.chunks;
  // Tensor inputs on the model's device; kv_range stays on the host (it is read there).
  a.x = a.x.to(device);
  a.t = a.t.to(device);
  a.y = a.y.to(device);
  a.xattn_mask = a.xattn_mask.to(device);
  a.caption_dropout_mask = a.caption_dropout_mask.to(device);
  return a;
}

// A host read of one element: waits for every kernel queued before it (CUDA), free on CPU.
void Sync(const at::Tensor& t) { (void)t.flatten()[0].item<float>(); }

// at::mm on the forward's dense GEMMs (tokens x in -> out), same dtype: one timed pass over the
// shapes, each after a warm-up. Returns {flops, seconds} of the pass.
struct GemmSet {
  std::vector<at::Tensor> x, w;
  double flops = 0;
  GemmSet(const ModelConfig& m, at::ScalarType dtype, int64_t S, c10::Device device) {
    const int64_t D = m.hidden_size;
    const std::vector<std::pair<int64_t, int64_t>> shapes = {
        {D, m.query_dim()}, {D, m.query_dim()}, {D, m.kv_dim()}, {D, m.kv_dim()},
        {2 * m.query_dim(), D}, {D, m.fc1_out()}, {m.ffn_hidden_size, D}};
    for (const auto& [in, out] : shapes) {
      x.push_back(at::randn({S, in}).to(device, dtype));
      w.push_back(at::randn({in, out}).to(device, dtype));
      flops += 2.0 * S * in * out;
    }
  }
  // Seconds of one pass, each GEMM timed after a warm-up.
  double Seconds() const {
    double seconds = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      Sync(at::mm(x[i], w[i]));
      const double t0 = NowSeconds();
      Sync(at::mm(x[i], w[i]));
      seconds += NowSeconds() - t0;
    }
    return seconds;
  }
};

// The BLAS libraries mapped into this process (at::mm's fp32 GEMM goes to libblas.so.3, which
// Debian's alternatives point at one implementation) and oneDNN (LibTorch's bf16 matmul on
// AVX-512 hosts).
std::string LoadedBlas() {
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> libs;
  for (std::string line; std::getline(maps, line);) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    for (const char* key : {"blas", "blis", "dnnl", "mkl"}) {
      if (path.find(key) != std::string::npos) libs.insert(std::filesystem::weakly_canonical(path).string());
    }
  }
  std::string out;
  for (const std::string& l : libs) out += (out.empty() ? "" : ", ") + l;
  if (out.empty()) return "none found";
  // OpenBLAS picks its kernels by CPU model at load (OPENBLAS_CORETYPE overrides): say which.
  using NameFn = char* (*)();
  if (auto corename = reinterpret_cast<NameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"))) {
    out += std::string("; OpenBLAS core ") + corename();
    const char* forced = std::getenv("OPENBLAS_CORETYPE");
    out += forced != nullptr ? std::string(" (OPENBLAS_CORETYPE=") + forced + ")" : " (detected)";
  }
  return out;
}

// The window's block-causal self-attention alone (q [S, Hq, hd], k/v views of one [S, G, 2 hd]
// buffer as the forward passes them), fused (each build the CPU runs) and unfused, in GFLOP/s
// (4 hd flops per query head and key).
void AttentionRates(const ModelConfig& m, const Window& w, at::ScalarType dtype, int reps, double gemm,
                    const char* name) {
  const int64_t S = w.tokens(), M = S / w.chunks, Hq = m.num_attention_heads, G = m.num_query_groups,
                hd = m.kv_channels;
  at::Tensor q = at::randn({S, Hq, hd}).to(dtype), kv = at::randn({S, G, 2 * hd}).to(dtype);
  at::Tensor k = kv.narrow(2, 0, hd), v = kv.narrow(2, hd, hd);
  std::vector<TokenRange> qr, kr;
  double pairs = 0;
  for (int j = 0; j < w.chunks; ++j) {
    qr.emplace_back(j * M, (j + 1) * M);
    kr.emplace_back(0, (j + 1) * M);
    pairs += static_cast<double>(M) * (j + 1) * M;
  }
  const double flops = 4.0 * hd * Hq * pairs;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  auto rate = [&](auto&& fn) {  // best of reps, after a warm-up
    fn();
    double best = 1e300;
    for (int r = 0; r < reps; ++r) {
      const double t0 = NowSeconds();
      fn();
      best = std::min(best, NowSeconds() - t0);
    }
    return flops / best / 1e9;
  };
  std::string line;
  for (CpuIsa isa : {CpuIsa::kAvx512, CpuIsa::kAvx2}) {
    if (!CpuHasIsa(isa)) continue;
    const double g = rate([&] { FlashRangeAttentionCpu(q, k, v, qr, kr, scale, isa); });
    char buf[128];
    std::snprintf(buf, sizeof buf, "fused %s %.1f GFLOP/s (%.2f of at::mm), ", CpuIsaName(isa), g, g / gemm);
    line += buf;
  }
  const double unfused = rate([&] { RangeAttentionUnfused(q, k, v, qr, kr, scale); });
  std::printf("%s: attention alone (%lld queries, %.1f GFLOP): %sunfused bmm+softmax %.1f GFLOP/s (%.2f of at::mm); "
              "the forward uses %s\n",
              name, static_cast<long long>(S), flops / 1e9, line.c_str(), unfused, unfused / gemm,
              CpuIsaName(SelectedCpuIsa()));
}

int Run(int argc, char** argv) {
  int threads = 2, reps = 3, layers = -1, attention = 1, chunks = 0, token_chunk_rows = 0;
  std::string shape = "medium", device_name = "cpu", dtypes = "both";
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_dit_forward: %s needs a value\n", argv[i]);
      return 2;
    }
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--layers")) layers = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--shape")) shape = argv[i + 1];
    else if (!std::strcmp(argv[i], "--device")) device_name = argv[i + 1];
    else if (!std::strcmp(argv[i], "--dtype")) dtypes = argv[i + 1];
    else if (!std::strcmp(argv[i], "--attention")) attention = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--chunks")) chunks = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--token_chunk_rows")) token_chunk_rows = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "bench_dit_forward: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  if (shape != "medium" && shape != "4.5b") {
    std::fprintf(stderr, "bench_dit_forward: --shape must be medium or 4.5b, got '%s'\n", shape.c_str());
    return 2;
  }
  if (dtypes != "both" && dtypes != "fp32" && dtypes != "bf16") {
    std::fprintf(stderr, "bench_dit_forward: --dtype must be both, fp32 or bf16, got '%s'\n", dtypes.c_str());
    return 2;
  }
  absl::StatusOr<c10::Device> parsed = magi::ParseDevice("--device", device_name);
  if (!parsed.ok()) {
    std::fprintf(stderr, "bench_dit_forward: %s\n", std::string(parsed.status().message()).c_str());
    return 2;
  }
  const c10::Device device = *parsed;
  const bool big = shape == "4.5b";
  if (layers < 0) layers = big ? 1 : 8;
  if (reps < 1 || layers < 1 || threads < 1) {
    std::fprintf(stderr, "bench_dit_forward: --reps, --layers and --threads must be >= 1\n");
    return 2;
  }
  Window win;
  if (big) win = Window{1, 6, 45, 80};
  if (chunks != 0) {
    if (chunks < 1 || chunks > kMediumChunks) {
      std::fprintf(stderr, "bench_dit_forward: --chunks must be in [1, %d], got %d\n", kMediumChunks, chunks);
      return 2;
    }
    win.chunks = chunks;
  }
  at::set_num_threads(threads);
  std::printf("bench_dit_forward: %s, %d layer(s), window %d x (%dx%dx%d) = %lld tokens, %s, %d threads, %d reps\n",
              big ? "4.5B shape (hidden 3072, 24 heads / 8 groups, GELU 12288)"
                  : "hidden 1024, 8 heads / 4 groups, GLU",
              layers, win.chunks, win.frames, win.tok_h, win.tok_w, static_cast<long long>(win.tokens()),
              device.str().c_str(), threads, reps);
  std::printf("BLAS: %s; at::get_num_threads() = %d\n", LoadedBlas().c_str(), at::get_num_threads());
  std::vector<ParamsDtype> run;
  if (dtypes != "bf16") run.push_back(ParamsDtype::kFloat32);
  if (dtypes != "fp32") run.push_back(ParamsDtype::kBFloat16);
  for (ParamsDtype dt : run) {
    const char* name = dt == ParamsDtype::kFloat32 ? "fp32" : "bf16";
    const ModelConfig m = big ? FourPointFiveBLayers(layers, dt) : MediumDitConfig(layers, dt);
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
    DitModel::Options options;
    options.device = device;
    if (token_chunk_rows > 0) options.token_chunk_rows = token_chunk_rows;
    auto model =
        ckpt.ok() ? DitModel::Load(m, **ckpt, options) : absl::StatusOr<std::unique_ptr<DitModel>>(ckpt.status());
    if (!model.ok()) {
      std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
      return 1;
    }
    // A one-chunk forward over a tiny grid reads every weight page with negligible
    // activations: the RSS growth up to here is what loading costs.
    DitForwardArgs touch = WindowArgs(m, Window{1, win.frames, 2, 2}, device);
    if (auto w = (*model)->Forward(touch); !w.ok()) {
      std::fprintf(stderr, "%s\n", std::string(w.status().message()).c_str());
      return 1;
    } else {
      Sync(*w);
    }
    const int64_t peak_load_kb = ProcStatusKb("VmHWM") - rss0;
    DitForwardArgs args = WindowArgs(m, win, device);
    ResetPeakRss();
    const int64_t rss1 = ProcStatusKb("VmRSS");
    if (auto w = (*model)->Forward(args); !w.ok()) {
      std::fprintf(stderr, "%s\n", std::string(w.status().message()).c_str());
      return 1;
    } else {
      Sync(*w);
    }
    const int64_t activations_kb = ProcStatusKb("VmHWM") - rss1;
    const int64_t S = win.tokens();
    const int64_t M = S / win.chunks;
    // Chunk j sees j + 1 chunks: mean keys per query M (1 + ... + chunks) / chunks.
    const double flops =
        DitModel::ForwardFlops(m, S, M * (win.chunks * (win.chunks + 1) / 2) / win.chunks, kCaptionValid, win.chunks);
    // The forward and at::mm's GEMMs alternate, and each keeps its fastest repetition: on a
    // shared machine both then see the same load, and the ratio is what a quiet machine shows
    // more nearly than either absolute figure.
    const GemmSet gemms(m, dt == ParamsDtype::kFloat32 ? at::kFloat : at::kBFloat16, S, device);
    double sec = 1e300, gemm_sec = 1e300;
    for (int r = 0; r < reps; ++r) {
      const double t0 = NowSeconds();
      auto w = (*model)->Forward(args);
      if (!w.ok()) {
        std::fprintf(stderr, "%s\n", std::string(w.status().message()).c_str());
        return 1;
      }
      Sync(*w);
      sec = std::min(sec, NowSeconds() - t0);
      gemm_sec = std::min(gemm_sec, gemms.Seconds());
    }
    const double achieved = flops / sec / 1e9;
    const double gemm = gemms.flops / gemm_sec / 1e9;
    std::printf("%s: forward %.3f s (best of %d), %.1f GFLOP -> %.1f GFLOP/s; at::mm on the same GEMMs %.1f GFLOP/s; "
                "ratio %.2f (target >= 0.9 for fp32)\n",
                name, sec, reps, flops / 1e9, achieved, gemm, achieved / gemm);
    if (!device.is_cuda() && attention != 0) {
      AttentionRates(m, win, dt == ParamsDtype::kFloat32 ? at::kFloat : at::kBFloat16, reps, gemm, name);
    }
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
