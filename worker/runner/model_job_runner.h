// ModelJobRunner: the MAGI-1 JobRunner (--runner=model). Loads a model set once (config.json
// in MAGI-1's format whose runtime_config.load / t5_pretrained / vae_pretrained name the
// DiT checkpoint, the HF T5 folder with spiece.model, and the ViTVAE folder, relative to the
// config's folder) and runs each job as prompts -> T5 caption rows -> ArEngine (windowed KV
// cache, seeded noise) -> per emitted clean latent chunk a VAE decode -> uint8 RGB frames ->
// FrameSink::OnChunk, so every chunk streams as soon as it is final.
//
// Chunks: the job's geometry is its JobSpec's (jobspec/job_spec.h), built at the edge against
// what Models() declares from the config. The engine emits latent chunks of chunk_width
// frames (x temporal factor 4 video frames); the runner re-chunks the decoded frames into the
// job's chunks (equal for t2v and i2v; v2v's first emitted chunk is shorter), trims the last
// one to num_frames, and stops the engine (ChunkAction::kStop) once the emitted latent chunks
// cover the job's frames -- counted without decoding (ChunkFrameCount, worker/vae/vae_codec.h),
// so group followers stop where the leader does.
// Modes: t2v; i2v (the image is decoded, stretched and VAE-encoded as a 1-latent-frame
// prefix; the output's first frame is the decoded image frame); v2v (the first 32 frames of
// the prefix video at the model's fps, VAE-encoded; the output is the continuation only).
//
// Resume (job.start_chunk > 0): the engine is deterministic for a given seed (the noise is
// drawn from it), so the runner REPLAYS the whole job from the start -- recomputing the
// earlier chunks, which costs their time again -- and hands chunks < start_chunk to
// FrameSink::OnPrefixChunk; chunks from start_chunk on are byte-identical to an undisturbed
// run's.
//
// Runtime settings: size, frames, steps and seed come from the request (the server fills
// defaults from Models()); window, kv ranges and guidance scales from runtime_config, with
// the request's guidance.text_scale / prefix_scale replacing the scales when set.
//
// Conditioning (the reference's run-script environment) comes from config.json's
// serving_config: special tokens (default PAD_HQ + PAD_DURATION, as the run scripts) from
// the folder's special_tokens.npz -- loading fails when tokens are enabled and the file is
// missing -- and prev_chunks_scale. Reported in Models() and by conditioning().
//
// Overlap: the leader decodes and delivers chunks on a thread of its own while the engine
// computes (ModelRunnerOptions::overlap_decode).
//
// Several jobs at once (ModelRunnerOptions::max_concurrent_jobs > 1; single ranks and TP x CP
// groups, where every rank runs each job in the same slot and rank 0 orders the forwards):
// each Run() on its own thread; their engines share DiT forwards through a ForwardBatcher
// (calls of the same window shape in one batched forward, the others interleaved), the VAE
// takes one job at a time and the caption encoder (thread-safe, with its cache) is shared. Each job's video equals its solo run up to float32
// rounding (not bitwise: a batched GEMM rounds differently), so with batching a resumed job's
// replayed chunks match the stored ones to rounding, not byte for byte.
//
// Thread safety: Run() on up to max_concurrent_jobs threads at once (JobRunner contract).
// Owns the loaded networks.
#ifndef MAGI_WORKER_RUNNER_MODEL_JOB_RUNNER_H_
#define MAGI_WORKER_RUNNER_MODEL_JOB_RUNNER_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "absl/status/statusor.h"
#include "parallel/layout.h"
#include "worker/engine/chunk_captions.h"
#include "worker/engine/forward_batcher.h"
#include "worker/engine/stage_plan.h"
#include "worker/model/config.h"
#include "worker/runner/job_runner.h"

namespace magi {

class Communicator;

class CaptionEncoder;
struct ArRequest;
struct GenerateResult;
class Checkpoint;
class DitDenoiser;
class DitModel;
class T5Encoder;
class T5Tokenizer;
class VaeCodec;
class ViTVae;

struct ModelRunnerOptions {
  // The name served (ModelInfo.name, the server's catalog key): this when set (magi-worker
  // --model_name), else config.json's serving_config.name, else the model folder's basename.
  // Resolved by Load(); see model_name().
  std::string model_name;
  // Limits reported in Models() (the server validates requests against them).
  int max_frames = 960;
  int max_width = 512;
  int max_height = 512;
  int max_steps = 64;
  // Where this rank computes: the DiT, its KV cache and the VAE live here (a worker on a GPU
  // passes cuda:LOCAL_RANK). The T5 runs here when runtime_config.t5_device is "cuda" and
  // this is a CUDA device, on the CPU otherwise (a CPU worker given a config that asks for
  // "cuda" says so on stderr and keeps the T5 on the CPU; its embedding cache hides the cost
  // of repeated prompts). The VAE computes in float32 on the CPU (faster there, and exact)
  // and in the reference's bf16 dtype flow on a GPU.
  c10::Device device = c10::Device(c10::kCPU);
  // This rank's share of the DiT in a worker group (TP x CP); single rank by default. Every
  // rank of a group runs the same job with the same inputs (worker/main/rank_group_runner.h).
  ShardLayout layout;
  Communicator* tp_comm = nullptr;  // not owned
  Communicator* cp_comm = nullptr;  // not owned
  // CFG-parallel (EngineOptions::cfg_comm): the group of 2 or 3 ranks holding the same shard
  // that split cfg_number 3's passes; Load() refuses it for a model with one pass. With
  // several jobs, `cfg_channels` has one such group per slot ([0] = cfg_comm), so each job's
  // guidance exchanges and cache mirror keep to their own collective sequence.
  Communicator* cfg_comm = nullptr;  // not owned
  std::vector<Communicator*> cfg_channels;  // not owned
  // Rank groups (worker/main/rank_group_runner.h): `group_comm` is the group's world
  // communicator on every rank (i2v/v2v prefixes travel over it from rank 0). A follower
  // loads no VAE and neither encodes a prefix nor decodes a chunk -- the leader does both and
  // streams -- but runs the same engine steps, stopping by the job's geometry as every rank.
  bool follower = false;
  Communicator* group_comm = nullptr;  // not owned
  // Order of the engine's forwards (EngineOptions::schedule): stream-first emits the first
  // chunk after its own steps, same video within rounding (docs/schedule.md).
  Schedule schedule = Schedule::kStreamFirst;
  // EngineOptions::lead_kv_budget_bytes: stream-first records the lead chunk's K/V for as many
  // steps as fit and recomputes the rest (0: recompute all, bounded memory; -1: record all).
  int64_t lead_kv_budget_bytes = kDefaultLeadKvBudgetBytes;
  // EngineOptions::elide_self_only_copy: the lead chunk's nearly-clean copy is not run when
  // it would see exactly what the chunk sees (same video within rounding).
  bool elide_self_only_copy = true;
  // The leader decodes each clean chunk and hands it to the sink (which encodes and sends
  // it) on a thread of its own while the engine goes on with the next stage (a CUDA stream of
  // its own on a GPU), so a chunk reaches the client a decode after it is clean; the sink's
  // OnChunk / OnPrefixChunk then run on that thread (FrameSink's contract). false: inline,
  // on the engine's thread, between model calls (for comparison and debugging).
  bool overlap_decode = true;
  // Jobs run at once (magi-worker --max_jobs_per_group), in [1, 16]; their DiT calls share
  // batched forwards. On a rank group > 1 needs `job_channels` (one per slot, [0] =
  // group_comm: the job's prefix travels over its slot's), `forward_order` (the CFG replica's
  // model rank 0 announces each batched forward's slots; ForwardBatcher) and, CFG-parallel,
  // `cfg_channels`. RunnerJob::slot picks the channels.
  int max_concurrent_jobs = 1;
  std::vector<Communicator*> job_channels;  // not owned
  Communicator* forward_order = nullptr;    // not owned
  // Tests / debugging: the caption rows of every job, as the engine built them.
  std::function<void(const ChunkCaptions&)> on_captions;
  // Tests / debugging: each job's engine result (schedule, model calls, lead K/V steps
  // recorded and recomputed), when its generation succeeded.
  std::function<void(const GenerateResult&)> on_result;
};

class ModelJobRunner final : public JobRunner {
 public:
  // Loads `model_dir`/config.json and the three networks. Errors name the file or field.
  static absl::StatusOr<std::unique_ptr<ModelJobRunner>> Load(const std::string& model_dir,
                                                              const ModelRunnerOptions& options = {});
  ~ModelJobRunner() override;
  ModelJobRunner(const ModelJobRunner&) = delete;
  ModelJobRunner& operator=(const ModelJobRunner&) = delete;

  std::string name() const override { return "model"; }
  std::vector<::magi::internal::v1::ModelInfo> Models() const override;
  absl::Status Run(const RunnerJob& job, FrameSink& sink) override;
  int max_concurrent_jobs() const override { return options_.max_concurrent_jobs; }
  // How the concurrent jobs' DiT calls were batched so far (all zero with one job at a time).
  ForwardBatcherStats batch_stats() const;

  // The checks Run() makes before it loads media or runs a step: the request against this
  // model's config, the job's geometry against the model's, and the engine's plan of it (all
  // but v2v, whose prefix length needs the decoded video). InvalidArgument naming the field.
  // Every job whose JobSpec the edge built from Models() passes (tests/runner property test).
  absl::Status Check(const RunnerJob& job) const;

  // Video frames per job chunk: chunk_width x temporal_downsample_factor.
  int frames_per_chunk() const;
  const MagiConfig& config() const { return config_; }
  // The resolved name this runner serves (ModelRunnerOptions::model_name).
  const std::string& model_name() const { return options_.model_name; }
  // Training (tools/train_tiny) works on what Load() loaded: the DiT (its NamedWeights), the
  // VAE codec (null on a group follower), and a prompt's caption rows for a video of
  // `chunk_num` latent chunks of which `chunk_offset` are prefix, exactly as Run() builds them
  // (T5 through the embedding cache, serving_config's special tokens, the null rows).
  const DitModel& dit() const { return *dit_; }
  const VaeCodec* codec() const { return codec_.get(); }
  absl::StatusOr<ChunkCaptions> Captions(const std::string& prompt, int chunk_num, int chunk_offset) const;
  // A prompt's text through the caption encoder (T5 output and its 0/1 mask as float), as the
  // engine takes it from `from_chunk` on.
  absl::StatusOr<EncodedChunkPrompt> EncodePrompt(const std::string& text, int from_chunk) const;
  // One line for logs: "special tokens PAD_HQ, PAD_DURATION (DIR/special_tokens.npz),
  // prev_chunks_scale 0.7" (or "special tokens none, ...").
  std::string conditioning() const;
  // Where the networks run, one line for logs: "DiT cuda:0 (KV cache there too), VAE cuda:0
  // bf16, T5 cpu" ("VAE none" on a group follower).
  std::string placement() const;

 private:
  ModelJobRunner() = default;
  absl::Status Validate(const RunnerJob& job) const;
  // Validates `job` and fills the engine's config `c` and request (captions, prefix).
  absl::Status Prepare(const RunnerJob& job, MagiConfig& c, ArRequest& req) const;
  // The VAE's encoding of a prefix video (one job at a time).
  absl::StatusOr<at::Tensor> EncodePrefix(const at::Tensor& video) const;
  // Runs the engine, decoding and streaming each chunk (not on a follower).
  absl::Status Generate(const RunnerJob& job, const MagiConfig& c, const ArRequest& req, FrameSink& sink);

  ModelRunnerOptions options_;
  MagiConfig config_;
  std::unique_ptr<Checkpoint> dit_checkpoint_;  // the DiT's weights alias its mapping
  std::unique_ptr<DitModel> dit_;
  std::unique_ptr<DitDenoiser> denoiser_;
  std::unique_ptr<ForwardOrder> order_;      // rank groups with max_concurrent_jobs > 1
  std::unique_ptr<ForwardBatcher> batcher_;  // max_concurrent_jobs > 1 only
  // Concurrent jobs take the VAE one at a time (the caption encoder guards itself).
  mutable std::mutex vae_mu_;
  at::Tensor null_caption_;
  PromptTokens prompt_tokens_;       // serving_config's special tokens, selected at load
  std::string special_token_file_;  // "" when none is enabled
  std::unique_ptr<T5Tokenizer> tokenizer_;
  std::unique_ptr<T5Encoder> t5_;
  std::unique_ptr<CaptionEncoder> captions_;
  std::unique_ptr<ViTVae> vae_;
  std::unique_ptr<VaeCodec> codec_;
};

}  // namespace magi

#endif  // MAGI_WORKER_RUNNER_MODEL_JOB_RUNNER_H_
