// The autoregressive chunk engine: MAGI-1's chunk-wise denoising loop (spec pipeline.md
// §2, the reference's SampleTransport + generate_per_chunk). It plans the stages, draws or
// takes the noise, runs one guided DiT step per planned step (prefix-feature pass first for
// v2v), integrates with Euler steps, and hands every chunk to the caller the moment it is
// clean. The KV cache keeps only what later steps read (WindowedKvCache) unless the dense
// reference layout is asked for.
//
// Modes follow from the request: no prefix = t2v; a 1-frame latent prefix = i2v; a longer
// latent prefix = v2v (whole prefix chunks go through the feature pass, a partial chunk is
// padded every step). Chunk-wise prompts: one EncodedChunkPrompt per prompt change.
//
// Thread safety: an ArEngine may run one Generate() at a time; the Denoiser it wraps is not
// owned and must outlive it. Callbacks run on the calling thread between model calls.
#ifndef MAGI_WORKER_ENGINE_AR_ENGINE_H_
#define MAGI_WORKER_ENGINE_AR_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/engine/chunk_captions.h"
#include "worker/engine/denoiser.h"
#include "worker/engine/guidance.h"
#include "worker/engine/stage_plan.h"
#include "worker/model/config.h"

namespace magi {

class Communicator;
class KvCache;

struct ArRequest {
  std::vector<EncodedChunkPrompt> prompts;  // at least one (from_chunk 0)
  at::Tensor null_caption;           // [caption_max_length, caption_channels] (LoadNullCaption)
  PromptTokens special_tokens;      // PAD_* / NEG_PROMPT tokens (§4.4-4.5); empty = none
  at::Tensor prefix;                 // optional latent [1, C, P, h, w]: P = 1 i2v, P > 1 v2v
  at::Tensor noise;                  // optional [1, C, T_lat, h, w]; otherwise drawn from seed
  std::optional<int64_t> seed;       // default runtime_config.seed
  std::optional<int> num_frames;     // default runtime_config.num_frames
};

// A clean chunk, handed over as soon as it is final.
struct EmittedChunk {
  int index = 0;        // chunk index relative to the prefix (the reference's chunk_idx)
  int chunk = 0;        // absolute chunk index in the latent
  int chunks_total = 0; // chunks this request emits
  int frame_begin = 0;  // latent frames [frame_begin, frame_end) of the whole latent
  int frame_end = 0;
  at::Tensor latent;    // [1, C, frame_end − frame_begin, h, w] float32, owned copy
  int step = 0;         // index in the plan's steps after which it became clean (the global
                        // step s in the reference order)
  double seconds = 0;   // since Generate() started
};

struct ArProgress {
  int step = 0;          // planned steps done
  int total_steps = 0;
  int chunks_done = 0;
  int chunks_total = 0;
  int window_begin = 0;  // chunks in flight [window_begin, window_end)
  int window_end = 0;
  double seconds = 0;
  double eta_seconds = 0;
};

// What the engine does after handing a chunk to on_chunk.
enum class ChunkAction {
  kContinue,  // run on to the plan's end
  kStop,      // the caller has what it needs: Generate() returns OK now (result.stopped)
};

struct GenerateCallbacks {
  // Called for each clean chunk, in order. kStop ends Generate() successfully right after
  // this chunk (no further model call, no progress report for its step); an error aborts
  // the generation with it.
  std::function<absl::StatusOr<ChunkAction>(const EmittedChunk&)> on_chunk;
  std::function<void(const ArProgress&)> on_progress;
  // Polled before every model call; true ends Generate() with CancelledError.
  std::function<bool()> cancelled;
  // Debugging / goldens: every dispatcher call (numbered like the reference's sNN: the v2v
  // prefix pass is call 0) and every inner model call.
  std::function<void(int dispatch, const GuidanceStep& in, const at::Tensor& velocity)> on_dispatch;
  std::function<void(int dispatch, int call, const DitForwardArgs& args, const at::Tensor& out)> on_forward;
  // Live prompts: asked on every rank just before generated chunk `chunk` (0 = the first
  // after the prefix) starts denoising, once per chunk, in chunk order. A prompt returned
  // (its from_chunk is ignored) is used from `chunk` on, replacing the request's prompts of
  // later chunks; nullopt keeps them. An error aborts the generation with it.
  std::function<absl::StatusOr<std::optional<EncodedChunkPrompt>>(int chunk)> prompt_for_chunk;
  // Debugging / tests: the caption rows of this request, once, before the first model call.
  std::function<void(const ChunkCaptions& captions)> on_captions;
};

struct GenerateResult {
  at::Tensor final_latents;  // emitted chunks concatenated on T (if keep_final_latents)
  int chunks_emitted = 0;
  int forward_steps = 0;     // dispatcher calls
  int model_calls = 0;       // inner DiT forwards
  int64_t kv_peak_bytes = 0; // windowed cache only (0 for dense)
  // Stream-first with recorded lead-chunk K/V: the most recorded bytes held at once (0 else).
  int64_t lead_kv_peak_bytes = 0;
  Schedule schedule = Schedule::kReference;  // the order this run used
  LeadKv lead_kv = LeadKv::kRecord;          // stream-first: how the lead chunk's K/V came
  int lead_kv_steps = 0;                     // stream-first: steps recorded (StagePlan)
  int lead_recompute_steps = 0;              //   and steps recomputed
  double seconds = 0;
  double first_chunk_seconds = 0;
  bool stopped = false;      // on_chunk returned kStop before the plan's last step
};

enum class KvCacheMode {
  kWindowed,  // drop rows no later step reads (default; memory independent of length)
  kDense,     // the reference's whole-video buffer (goldens compare it)
};

struct EngineOptions {
  KvCacheMode kv_cache = KvCacheMode::kWindowed;
  bool keep_final_latents = true;
  // Nearly-clean blend weight; the reference reads env prev_chunks_scale (default 0.7).
  double prev_chunks_scale = 0.7;
  // Order of the forwards (stage_plan.h; docs/schedule.md). kStreamFirst emits the first
  // chunk after its own num_steps forwards instead of after window_size stages, same
  // outputs within rounding; the engine default stays the reference's order, which the
  // goldens replay call by call (the runner and `magi generate` default to stream-first).
  Schedule schedule = Schedule::kReference;
  // Stream-first: the lead chunk's K/V that later chunks read is recorded for as many of its
  // steps as fit in this many bytes (StreamFirstRecordBytes per step; -1 = no limit), and
  // recomputed in the other steps (one extra chunk-forward each; 0 = recompute all).
  int64_t lead_kv_budget_bytes = kDefaultLeadKvBudgetBytes;
  // GuidanceConfig::elide_self_only_copy: skip the nearly-clean copy of a first noisy chunk
  // that attends only to itself (4 of the 20 lead-chunk forwards of a distilled window-4
  // video). Off by default: the goldens replay the reference's calls.
  bool elide_self_only_copy = false;
  // CFG-parallel (GuidanceConfig::cfg_comm, spec parallel.md §3): cfg_number 3's passes split
  // over this group's 2 or 3 ranks, each running the same Generate() with the same request;
  // the outputs are exchanged so every rank makes the same video. Not owned; null = all here.
  Communicator* cfg_comm = nullptr;
};

class ArEngine {
 public:
  // Checks the configuration (cfg_number, num_steps vs window_size and kv-range list, sizes);
  // errors name the config field.
  static absl::StatusOr<std::unique_ptr<ArEngine>> Create(const MagiConfig& config, Denoiser& model,
                                                          const EngineOptions& options = {});
  ~ArEngine();
  ArEngine(const ArEngine&) = delete;
  ArEngine& operator=(const ArEngine&) = delete;

  // Runs one request to the end (or to an error / cancellation). Bad requests are
  // InvalidArgument naming the field; an ATen error on the way (device mismatch, out of
  // memory) is an Internal error carrying ATen's message.
  absl::StatusOr<GenerateResult> Generate(const ArRequest& request, const GenerateCallbacks& callbacks = {});

  // The plan a request would run (same validation as Generate()).
  absl::StatusOr<StagePlan> Plan(const ArRequest& request) const;

  // The KV cache of the last Generate() (kept until the next one), for tests and goldens.
  KvCache* last_cache() const { return cache_.get(); }

  const MagiConfig& config() const { return config_; }

 private:
  ArEngine(const MagiConfig& config, Denoiser& model, const EngineOptions& options);
  absl::StatusOr<GenerateResult> GenerateImpl(const ArRequest& request, const GenerateCallbacks& callbacks);
  MagiConfig config_;
  Denoiser& model_;
  EngineOptions options_;
  std::unique_ptr<KvCache> cache_;
};

// Validates the runtime/engine settings the loop relies on (§10 item 1, §3); the message
// names the field and the allowed values.
absl::Status ValidateEngineConfig(const MagiConfig& config);

}  // namespace magi

#endif  // MAGI_WORKER_ENGINE_AR_ENGINE_H_
