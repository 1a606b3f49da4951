// bench_generate: end-to-end t2v generation through the AR engine on a medium config.
//
// Medium config: hidden 1024, 8 layers, 8 heads / 4 groups (head dim 128), GLU MLP,
// chunks of 6 latent frames x 24x40 latent (6x12x20 = 1440 tokens), random fp32 weights
// written to a temporary checkpoint, captions 256 x 4096 (20 valid tokens), cfg_number 1
// (distill), 16 steps, 4 chunks. Runs, in the same process, window 4 in the reference order
// and in the stream-first order (lead-chunk K/V recorded; --recompute adds the recompute
// variant) and, with --window1, window 1; prints for each: time to first chunk, time per
// chunk (between emissions), total, peak RSS (VmHWM reset before each run), peak KV-cache
// bytes, peak recorded lead-chunk K/V bytes, and the ratios to the window-4 reference run.
// Usage: bench_generate [--threads N] [--layers N] [--steps N] [--chunks N] [--recompute] [--window1]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "bench/bench_util.h"
#include "bench/medium_dit.h"
#include "worker/engine/ar_engine.h"
#include "worker/model/checkpoint.h"
#include "worker/model/dit.h"
#include "worker/model/random_checkpoint.h"

namespace magi {
namespace {

MagiConfig MediumConfig(int layers, int steps, int chunks, int window) {
  MagiConfig c = TinyMagiConfig();
  c.model = MediumDitConfig(layers);
  RuntimeConfig& r = c.runtime;
  r.cfg_number = 1;
  r.num_steps = steps;
  r.window_size = window;
  r.chunk_width = 6;
  r.video_size_h = 24 * 8;
  r.video_size_w = 40 * 8;
  r.num_frames = chunks * 6 * 4;
  c.engine.distill = true;
  return c;
}

// CPU seconds of this process (all threads): on a shared, loaded machine the wall times
// swing with the neighbours' load, the CPU time spent on our own work much less.
double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct RunStats {
  double first = 0, total = 0;
  double first_cpu = 0, total_cpu = 0;
  std::vector<double> emit_times;
  int64_t peak_rss_kb = 0, kv_peak = 0, lead_kv_peak = 0;
  int forwards = 0, calls = 0;
};

struct RunSpec {
  const char* name;
  int window;
  Schedule schedule;
  int64_t lead_kv_budget;  // -1 record, 0 recompute
};

int Main(int argc, char** argv) {
  int threads = 2, layers = 8, steps = 16, chunks = 4;
  bool recompute = false, window1 = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--recompute")) {
      recompute = true;
      continue;
    }
    if (!std::strcmp(argv[i], "--window1")) {
      window1 = true;
      continue;
    }
    auto next = [&](const char* flag) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_generate: %s needs a value\n", flag);
        std::exit(2);
      }
      int v = std::atoi(argv[++i]);
      if (v < 1) {
        std::fprintf(stderr, "bench_generate: %s must be a positive integer\n", flag);
        std::exit(2);
      }
      return v;
    };
    if (!std::strcmp(argv[i], "--threads")) threads = next("--threads");
    else if (!std::strcmp(argv[i], "--layers")) layers = next("--layers");
    else if (!std::strcmp(argv[i], "--steps")) steps = next("--steps");
    else if (!std::strcmp(argv[i], "--chunks")) chunks = next("--chunks");
    else {
      std::fprintf(stderr,
                   "usage: bench_generate [--threads N] [--layers N] [--steps N] [--chunks N] [--recompute] [--window1]\n");
      return 2;
    }
  }
  if (steps % 4 != 0) {
    std::fprintf(stderr, "bench_generate: --steps must be a multiple of 4 (window 4 and the 4 kv ranges)\n");
    return 2;
  }
  at::set_num_threads(threads);
  const MagiConfig base = MediumConfig(layers, steps, chunks, 4);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("magi_bench_generate_" + std::to_string(::getpid()) + ".safetensors"))
          .string();
  if (auto s = WriteRandomDitCheckpoint(base.model, path); !s.ok()) {
    std::fprintf(stderr, "bench_generate: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  auto ckpt = Checkpoint::Open(path);
  if (!ckpt.ok()) return 1;
  DitModel::Options opts;
  opts.distill = true;
  auto dit = DitModel::Load(base.model, **ckpt, opts);
  if (!dit.ok()) {
    std::fprintf(stderr, "bench_generate: %s\n", std::string(dit.status().message()).c_str());
    return 1;
  }
  auto null = LoadNullCaption(**ckpt, base.model);
  if (!null.ok()) return 1;
  DitDenoiser model(**dit);
  std::printf("bench_generate: hidden 1024, %d layers, 8 heads / 4 groups, GLU, chunk 6x12x20 tokens, %d chunks, "
              "%d steps, cfg 1, fp32, %d threads\n", layers, chunks, steps, threads);

  ArRequest req;
  EncodedChunkPrompt p;
  at::manual_seed(7);
  p.caption = at::randn({base.model.caption_max_length, base.model.caption_channels});
  p.mask = at::zeros({base.model.caption_max_length});
  p.mask.narrow(0, 0, 20).fill_(1);
  req.prompts.push_back(p);
  req.null_caption = *null;
  req.seed = 1234;

  std::vector<RunSpec> specs = {{"reference", 4, Schedule::kReference, -1},
                                 {"stream_first", 4, Schedule::kStreamFirst, -1}};
  if (recompute) specs.push_back({"stream_first(recompute)", 4, Schedule::kStreamFirst, 0});
  if (window1) specs.push_back({"window1", 1, Schedule::kReference, -1});
  std::vector<RunStats> results;
  std::vector<at::Tensor> finals;
  for (const RunSpec& spec : specs) {
    MagiConfig c = MediumConfig(layers, steps, chunks, spec.window);
    EngineOptions eo;
    eo.schedule = spec.schedule;
    eo.lead_kv_budget_bytes = spec.lead_kv_budget;
    auto engine = ArEngine::Create(c, model, eo);
    if (!engine.ok()) {
      std::fprintf(stderr, "bench_generate: %s\n", std::string(engine.status().message()).c_str());
      return 1;
    }
    RunStats st;
    GenerateCallbacks cb;
    const double cpu0 = ProcessCpuSeconds();
    cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
      if (st.emit_times.empty()) st.first_cpu = ProcessCpuSeconds() - cpu0;
      st.emit_times.push_back(e.seconds);
      return ChunkAction::kContinue;
    };
    ResetPeakRss();
    auto r = (*engine)->Generate(req, cb);
    st.total_cpu = ProcessCpuSeconds() - cpu0;
    if (!r.ok()) {
      std::fprintf(stderr, "bench_generate: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    st.first = r->first_chunk_seconds;
    st.total = r->seconds;
    st.peak_rss_kb = ProcStatusKb("VmHWM");
    st.kv_peak = r->kv_peak_bytes;
    st.lead_kv_peak = r->lead_kv_peak_bytes;
    st.forwards = r->forward_steps;
    st.calls = r->model_calls;
    std::printf("%s, window %d: %d forwards, first chunk %.2f s, per chunk", spec.name, spec.window, st.forwards,
                st.first);
    for (size_t i = 1; i < st.emit_times.size(); ++i) std::printf(" %.2f", st.emit_times[i] - st.emit_times[i - 1]);
    std::printf(" s, total %.2f s (%.2f s/forward), CPU time first chunk %.2f s / total %.2f s, peak RSS %.0f MiB, "
                "peak KV cache %.1f MiB, peak recorded lead K/V %.1f MiB\n",
                st.total, st.total / st.forwards, st.first_cpu, st.total_cpu, st.peak_rss_kb / 1024.0,
                st.kv_peak / 1048576.0, st.lead_kv_peak / 1048576.0);
    std::fflush(stdout);
    results.push_back(st);
    finals.push_back(r->final_latents);
  }
  const RunStats& ref = results[0];
  for (size_t i = 1; i < specs.size(); ++i) {
    const RunStats& o = results[i];
    std::printf("ratios %s/reference: first chunk %.3f (CPU time %.3f), total %.3f (CPU time %.3f), peak RSS %.3f, "
                "peak KV %.2f",
                specs[i].name, o.first / ref.first, o.first_cpu / ref.first_cpu, o.total / ref.total,
                o.total_cpu / ref.total_cpu, static_cast<double>(o.peak_rss_kb) / ref.peak_rss_kb,
                static_cast<double>(o.kv_peak) / std::max<int64_t>(1, ref.kv_peak));
    if (specs[i].window == 4) {
      const double diff = (finals[i] - finals[0]).abs().max().item<double>() / finals[0].abs().max().item<double>();
      std::printf(", final latents max |diff| / max |ref| %.3g", diff);
    }
    std::printf("\n");
  }
  std::filesystem::remove(path);
  return 0;
}

}  // namespace
}  // namespace magi

int main(int argc, char** argv) { return magi::Main(argc, argv); }
