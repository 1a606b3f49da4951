#include "client/generate_command.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "worker/engine/ar_engine.h"
#include "worker/engine/run_env.h"
#include "worker/model/checkpoint.h"
#include "worker/model/config.h"
#include "worker/model/dit.h"
#include "worker/model/host_allocator.h"
#include "worker/model/safetensors.h"
#include "worker/model/special_tokens.h"

namespace magi {
namespace {

constexpr char kUsage[] =
    "usage: magi generate --config CONFIG.json --weights DIT --captions CAPTIONS.safetensors --out DIR [options]\n"
    "\n"
    "Runs MAGI-1's autoregressive denoising in this process and writes one latent file per\n"
    "chunk (DIR/chunk_NNN.safetensors, key 'latent', float32 [1, C, T, h, w]) as soon as the\n"
    "chunk is clean.\n"
    "\n"
    "required:\n"
    "  --config PATH      MAGI-1 config.json (model_config, runtime_config, engine_config)\n"
    "  --weights PATH     DiT checkpoint: .safetensors, .safetensors.index.json or a folder\n"
    "  --captions PATH    safetensors with 'caption_embs' [L, C] (or [1, 1, L, C]) and 'emb_masks' [L];\n"
    "                     chunk-wise prompts: 'caption_embs.K' / 'emb_masks.K' start at generated chunk K\n"
    "  --out DIR          output folder (created if missing)\n"
    "options:\n"
    "  --prefix PATH      safetensors with 'prefix' latent [1, C, P, h, w]: P = 1 image-to-video, P > 1 video-to-video\n"
    "  --noise PATH       safetensors with 'noise' [1, C, T, h, w] instead of drawing it from the seed\n"
    "  --seed N           noise seed (default runtime_config.seed)\n"
    "  --num-frames N     video frames to generate (default runtime_config.num_frames)\n"
    "  --num-steps N      denoising steps per chunk (default runtime_config.num_steps)\n"
    "  --window-size N    chunks in flight (default runtime_config.window_size)\n"
    "  --device DEV       cpu (default) or cuda[:i]\n"
    "  --threads N        CPU threads for ATen (default: all)\n"
    "  --kv-cache MODE    windowed (default, bounded memory) or dense (reference layout)\n"
    "  --schedule ORDER   stream_first (default: the first chunk runs its steps alone and leaves\n"
    "                     first) or reference (the reference's order); same video within rounding\n"
    "  --elide-self-only-copy true|false\n"
    "                     skip the nearly-clean copy of a chunk that attends only to itself (default\n"
    "                     true; false runs the reference's exact calls); same video within rounding\n"
    "  --lead-kv-budget-mb N\n"
    "                     stream_first: record the lead chunk's K/V that later chunks read for as\n"
    "                     many of its steps as fit in N MiB, recompute it in the others (one extra\n"
    "                     chunk-forward each; default 0: recompute all, 3 x steps/window extra\n"
    "                     chunk-forwards, bounded memory; -1: record all; docs/schedule.md)\n"
    "  --quiet            no progress output\n"
    "environment (the reference's run-script variables, read with its rules; config.json's\n"
    "serving_config is for the served path and `generate --model_dir`, not this command):\n"
    "  PAD_HQ, PAD_DURATION, PAD_STATIC, PAD_DYNAMIC, PAD_BORDERNESS, PAD_THREE_D_MODEL, PAD_TWO_D_ANIME,\n"
    "  NEG_PROMPT         special caption tokens (1/true/yes/y/on/enabled = on); need SPECIAL_TOKEN_PATH\n"
    "  prev_chunks_scale  nearly-clean blend weight (default 0.7)\n";

struct Flags {
  std::string config, weights, captions, out, prefix, noise, device = "cpu", kv_cache = "windowed",
              schedule = "stream_first", elide_self_only_copy = "true";
  std::optional<int64_t> seed;
  std::optional<int> num_frames, num_steps, window_size, threads;
  int64_t lead_kv_budget_bytes = kDefaultLeadKvBudgetBytes;
  bool quiet = false;
};

// Parses argv; on a bad flag prints the reason and returns false.
bool ParseFlags(int argc, char** argv, Flags* f, std::string* error) {
  std::map<std::string, std::string*> strings = {
      {"--config", &f->config}, {"--weights", &f->weights}, {"--captions", &f->captions}, {"--out", &f->out},
      {"--prefix", &f->prefix}, {"--noise", &f->noise},     {"--device", &f->device},     {"--kv-cache", &f->kv_cache},
      {"--schedule", &f->schedule}, {"--elide-self-only-copy", &f->elide_self_only_copy}};
  auto int_flag = [&](const std::string& name, const std::string& v, int64_t lo, int64_t hi, int64_t* out) {
    int64_t x;
    if (!absl::SimpleAtoi(v, &x) || x < lo || x > hi) {
      *error = absl::StrCat(name, " must be an integer in [", lo, ", ", hi, "], got '", v, "'");
      return false;
    }
    *out = x;
    return true;
  };
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    std::string value;
    const size_t eq = a.find('=');
    bool inline_value = a.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    if (a == "--quiet") {
      f->quiet = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      *error = "help";
      return false;
    }
    const bool known = strings.count(a) || a == "--seed" || a == "--num-frames" || a == "--num-steps" ||
                       a == "--window-size" || a == "--threads" || a == "--lead-kv-budget-mb";
    if (!known) {
      *error = absl::StrCat("unknown option '", a, "'");
      return false;
    }
    if (!inline_value) {
      if (i + 1 >= argc) {
        *error = absl::StrCat(a, " needs a value");
        return false;
      }
      value = argv[++i];
    }
    if (strings.count(a)) {
      if (value.empty()) {
        *error = absl::StrCat(a, " must not be empty");
        return false;
      }
      *strings[a] = value;
      continue;
    }
    int64_t x = 0;
    if (a == "--seed") {
      if (!int_flag(a, value, 0, INT64_MAX, &x)) return false;
      f->seed = x;
    } else if (a == "--num-frames") {
      if (!int_flag(a, value, 1, 1000000, &x)) return false;
      f->num_frames = static_cast<int>(x);
    } else if (a == "--num-steps") {
      if (!int_flag(a, value, 1, 100000, &x)) return false;
      f->num_steps = static_cast<int>(x);
    } else if (a == "--window-size") {
      if (!int_flag(a, value, 1, 64, &x)) return false;
      f->window_size = static_cast<int>(x);
    } else if (a == "--lead-kv-budget-mb") {
      auto bytes = ParseLeadKvBudgetMb(a, value);
      if (!bytes.ok()) {
        *error = std::string(bytes.status().message());
        return false;
      }
      f->lead_kv_budget_bytes = *bytes;
    } else if (a == "--threads") {
      if (!int_flag(a, value, 1, 1024, &x)) return false;
      f->threads = static_cast<int>(x);
    }
  }
  for (auto [name, v] : {std::pair<const char*, std::string*>{"--config", &f->config}, {"--weights", &f->weights},
                         {"--captions", &f->captions}, {"--out", &f->out}}) {
    if (v->empty()) {
      *error = absl::StrCat(name, " is required");
      return false;
    }
  }
  if (f->kv_cache != "windowed" && f->kv_cache != "dense") {
    *error = absl::StrCat("--kv-cache must be 'windowed' or 'dense', got '", f->kv_cache, "'");
    return false;
  }
  if (f->elide_self_only_copy != "true" && f->elide_self_only_copy != "false") {
    *error = absl::StrCat("--elide-self-only-copy must be 'true' or 'false', got '", f->elide_self_only_copy, "'");
    return false;
  }
  if (auto s = ParseSchedule("--schedule", f->schedule); !s.ok()) {
    *error = std::string(s.status().message());
    return false;
  }
  return true;
}

absl::StatusOr<at::Tensor> ReadKey(const SafetensorsFile& file, const std::string& key) {
  if (!file.Contains(key)) {
    return absl::NotFoundError(absl::StrCat("'", file.path(), "' has no tensor '", key, "'"));
  }
  MAGI_ASSIGN_OR_RETURN(auto t, file.Get(key));
  return t.clone();
}

// Prompts from the captions file: 'caption_embs' / 'emb_masks' (also under 'input.'), plus
// 'caption_embs.K' / 'emb_masks.K' for a prompt starting at chunk K.
absl::StatusOr<std::vector<EncodedChunkPrompt>> ReadPrompts(const std::string& path) {
  MAGI_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  const SafetensorsFile& f = *file;
  std::string base = f.Contains("caption_embs") ? "" : (f.Contains("input.caption_embs") ? "input." : "");
  std::map<int, EncodedChunkPrompt> prompts;
  for (const auto& key : f.Keys()) {
    const std::string stem = base + "caption_embs";
    if (key.rfind(stem, 0) != 0) continue;
    const std::string rest = key.substr(stem.size());
    int from = 0;
    if (!rest.empty() && (rest[0] != '.' || !absl::SimpleAtoi(rest.substr(1), &from) || from < 0)) {
      return absl::InvalidArgumentError(absl::StrCat("'", path, "': tensor '", key,
                                                     "' must be named caption_embs or caption_embs.K (K = chunk)"));
    }
    EncodedChunkPrompt p;
    p.from_chunk = from;
    MAGI_ASSIGN_OR_RETURN(auto caption, ReadKey(f, key));
    MAGI_ASSIGN_OR_RETURN(auto mask, ReadKey(f, base + "emb_masks" + rest));
    p.caption = caption;
    p.mask = mask;
    prompts[from] = p;
  }
  if (prompts.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' has no 'caption_embs' tensor"));
  }
  std::vector<EncodedChunkPrompt> out;
  for (auto& [k, p] : prompts) out.push_back(p);
  return out;
}

class ProgressPrinter {
 public:
  ProgressPrinter(bool quiet) : quiet_(quiet), tty_(isatty(fileno(stderr)) != 0) {}
  void Step(const ArProgress& p) {
    if (quiet_) return;
    if (tty_) {
      const int width = 30;
      const int filled = p.total_steps > 0 ? width * p.step / p.total_steps : 0;
      std::fprintf(stderr, "\r[%s%s] chunk %d/%d  step %d/%d  %.1fs  ETA %.1fs ", std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), p.chunks_done, p.chunks_total, p.step, p.total_steps,
                   p.seconds, p.eta_seconds);
      if (p.step == p.total_steps) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else if (p.step == p.total_steps || p.step % std::max(1, p.total_steps / 10) == 0) {
      std::fprintf(stderr, "progress: step %d/%d chunk %d/%d elapsed %.1fs eta %.1fs\n", p.step, p.total_steps,
                   p.chunks_done, p.chunks_total, p.seconds, p.eta_seconds);
    }
  }
  void Chunk(const EmittedChunk& e, const std::string& path) {
    if (quiet_) return;
    if (tty_) std::fprintf(stderr, "\r%*s\r", 100, "");
    std::fprintf(stderr, "chunk %d/%d written: %s (%lld latent frames, %.1fs)\n", e.index + 1, e.chunks_total,
                 path.c_str(), static_cast<long long>(e.latent.size(2)), e.seconds);
  }

 private:
  bool quiet_, tty_;
};

int Fail(const std::string& what) {
  std::fprintf(stderr, "magi generate: %s\n", what.c_str());
  return 1;
}

}  // namespace

int RunGenerateCommand(int argc, char** argv) {
  Flags f;
  std::string error;
  if (!ParseFlags(argc, argv, &f, &error)) {
    if (error == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "magi generate: %s\n\n%s", error.c_str(), kUsage);
    return 2;
  }
  auto config = LoadMagiConfig(f.config);
  if (!config.ok()) return Fail(std::string(config.status().message()));
  if (f.num_steps) config->runtime.num_steps = *f.num_steps;
  if (f.window_size) config->runtime.window_size = *f.window_size;
  if (f.threads) at::set_num_threads(*f.threads);

  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(f.device);
  } catch (const std::exception&) {
    return Fail(absl::StrCat("--device must be cpu or cuda[:i], got '", f.device, "'"));
  }
  if (device.is_cuda() && !at::hasCUDA()) return Fail("--device cuda: this LibTorch build has no CUDA support");

  auto prompts = ReadPrompts(f.captions);
  if (!prompts.ok()) return Fail(std::string(prompts.status().message()));
  ArRequest req;
  req.prompts = *prompts;
  req.seed = f.seed;
  req.num_frames = f.num_frames;
  if (!f.prefix.empty()) {
    auto file = SafetensorsFile::Open(f.prefix);
    if (!file.ok()) return Fail(std::string(file.status().message()));
    auto t = ReadKey(**file, "prefix");
    if (!t.ok()) return Fail(std::string(t.status().message()));
    req.prefix = *t;
  }
  if (!f.noise.empty()) {
    auto file = SafetensorsFile::Open(f.noise);
    if (!file.ok()) return Fail(std::string(file.status().message()));
    auto t = ReadKey(**file, "noise");
    if (!t.ok()) return Fail(std::string(t.status().message()));
    req.noise = *t;
  }

  auto ckpt = Checkpoint::Open(f.weights);
  if (!ckpt.ok()) return Fail(std::string(ckpt.status().message()));
  auto null = LoadNullCaption(**ckpt, config->model);
  if (!null.ok()) return Fail(std::string(null.status().message()));
  req.null_caption = *null;
  DitModel::Options opts;
  opts.device = device;
  opts.distill = config->engine.distill;
  auto dit = DitModel::Load(config->model, **ckpt, opts);
  if (!dit.ok()) return Fail(std::string(dit.status().message()));
  DitDenoiser model(**dit);
  EngineOptions eopt;
  eopt.kv_cache = f.kv_cache == "dense" ? KvCacheMode::kDense : KvCacheMode::kWindowed;
  eopt.keep_final_latents = false;
  eopt.schedule = *ParseSchedule("--schedule", f.schedule);  // checked by ParseFlags
  eopt.elide_self_only_copy = f.elide_self_only_copy == "true";
  eopt.lead_kv_budget_bytes = f.lead_kv_budget_bytes;
  // The reference's run-script environment (PAD_*, NEG_PROMPT, prev_chunks_scale,
  // SPECIAL_TOKEN_PATH), read with its rules (worker/engine/run_env.h).
  auto env = RunEnvFromProcess();
  if (!env.ok()) return Fail(std::string(env.status().message()));
  eopt.prev_chunks_scale = env->prev_chunks_scale;
  std::unique_ptr<SpecialTokens> tokens;
  if (env->special_tokens.any()) {
    if (env->special_token_path.empty()) {
      return Fail(absl::StrCat("environment enables ", absl::StrJoin(env->special_tokens.EnabledNames(), ", "),
                               ": set SPECIAL_TOKEN_PATH to the special_tokens.npz to take them from"));
    }
    auto loaded = SpecialTokens::Load(env->special_token_path);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    tokens = std::move(*loaded);
  }
  auto selected = SelectPromptTokens(env->special_tokens, tokens.get(), config->model.caption_channels);
  if (!selected.ok()) return Fail(std::string(selected.status().message()));
  req.special_tokens = std::move(*selected);
  auto engine = ArEngine::Create(*config, model, eopt);
  if (!engine.ok()) return Fail(std::string(engine.status().message()));

  std::error_code ec;
  std::filesystem::create_directories(f.out, ec);
  if (ec) return Fail(absl::StrCat("--out: cannot create folder '", f.out, "': ", ec.message()));

  ProgressPrinter progress(f.quiet);
  GenerateCallbacks cb;
  cb.on_progress = [&](const ArProgress& p) { progress.Step(p); };
  cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
    const std::string path =
        (std::filesystem::path(f.out) / absl::StrFormat("chunk_%03d.safetensors", e.index)).string();
    std::map<std::string, std::string> meta = {{"chunk_index", std::to_string(e.index)},
                                               {"chunks_total", std::to_string(e.chunks_total)},
                                               {"latent_frame_begin", std::to_string(e.frame_begin)},
                                               {"latent_frame_end", std::to_string(e.frame_end)},
                                               {"seconds", absl::StrFormat("%.3f", e.seconds)}};
    MAGI_RETURN_IF_ERROR(WriteSafetensors(path, {{"latent", e.latent}}, meta));
    progress.Chunk(e, path);
    return ChunkAction::kContinue;
  };
  auto result = (*engine)->Generate(req, cb);
  if (!result.ok()) return Fail(std::string(result.status().message()));
  if (!f.quiet) {
    std::string lead;  // stream-first: how the lead chunk's K/V reached the later chunks
    if (result->schedule == Schedule::kStreamFirst) {
      lead = absl::StrFormat(", lead K/V recorded in %d steps (peak %.1f MiB), recomputed in %d",
                             result->lead_kv_steps, result->lead_kv_peak_bytes / 1048576.0,
                             result->lead_recompute_steps);
    }
    std::fprintf(stderr,
                 "done: %d chunks in %.1fs (first after %.1fs), %d forward steps, %d model calls, KV cache peak "
                 "%.1f MiB, %s order%s\n",
                 result->chunks_emitted, result->seconds, result->first_chunk_seconds, result->forward_steps,
                 result->model_calls, result->kv_peak_bytes / 1048576.0, ScheduleName(result->schedule), lead.c_str());
    const HostAllocatorStats mem = GetHostAllocatorStats();
    std::fprintf(stderr,
                 "host memory: large tensor blocks peak %.1f MiB (mapped peak %.1f MiB); blocks reused %lld, "
                 "newly mapped %lld, unmapped from the cache %lld\n",
                 mem.peak_live_bytes / 1048576.0, mem.peak_mapped_bytes / 1048576.0,
                 static_cast<long long>(mem.hits), static_cast<long long>(mem.misses),
                 static_cast<long long>(mem.evictions));
  }
  return 0;
}

}  // namespace magi
