#include "worker/runner/model_job_runner.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/Event.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "parallel/communicator.h"
#include "worker/engine/ar_engine.h"
#include "worker/engine/denoiser.h"
#include "worker/engine/forward_batcher.h"
#include "worker/engine/guidance.h"
#include "worker/engine/stage_plan.h"
#include "worker/media/image_decoder.h"
#include "worker/media/prefix_video_decoder.h"
#include "worker/model/checkpoint.h"
#include "worker/model/dit.h"
#include "worker/model/special_tokens.h"
#include "worker/t5/caption_encoder.h"
#include "worker/t5/t5_encoder.h"
#include "worker/t5/t5_tokenizer.h"
#include "worker/vae/vae_codec.h"
#include "worker/vae/vit_vae.h"

namespace magi {
namespace {

namespace fs = std::filesystem;
namespace pb = ::magi::v1;

// Pixels per latent pixel (the ViT VAE's spatial downsampling; the engine assumes it).
constexpr int kVaeSpatialFactor = 8;

absl::Status Bad(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// runtime_config paths are relative to the config's folder (absolute ones are kept).
std::string Resolve(const fs::path& base, const std::string& p) {
  if (p.empty()) return std::string();
  fs::path q(p);
  return (q.is_absolute() ? q : base / q).string();
}

// uint8 RGB frames (THWC) -> [1, 3, T, H, W] uint8, what VaeCodec::EncodePrefix takes.
at::Tensor FramesToVideo(const std::vector<RgbFrame>& frames) {
  const int64_t T = static_cast<int64_t>(frames.size()), H = frames[0].height, W = frames[0].width;
  at::Tensor v = at::empty({T, H, W, 3}, at::kByte);
  for (int64_t t = 0; t < T; ++t) {
    std::memcpy(v[t].data_ptr<uint8_t>(), frames[t].rgb24.data(), frames[t].rgb24.size());
  }
  return v.permute({3, 0, 1, 2}).unsqueeze(0).contiguous();
}

// uint8 [F, 3, H, W] -> RgbFrames appended to `out`.
void AppendFrames(const at::Tensor& frames, std::deque<RgbFrame>& out) {
  at::Tensor hwc = frames.permute({0, 2, 3, 1}).contiguous();
  const int64_t F = hwc.size(0), H = hwc.size(1), W = hwc.size(2);
  for (int64_t f = 0; f < F; ++f) {
    RgbFrame frame(static_cast<int>(W), static_cast<int>(H));
    std::memcpy(frame.rgb24.data(), hwc[f].data_ptr<uint8_t>(), frame.rgb24.size());
    out.push_back(std::move(frame));
  }
}

// Rank groups: the leader's prefix latent to every rank (followers load no VAE). Header
// [ok, C, P, h, w]; ok = 0 when the leader could not make one (it reports its own error; the
// followers end the job). Every rank calls it once per i2v/v2v job, whatever happened before.
absl::Status SharePrefix(Communicator& world, bool leader, bool leader_ok, at::Tensor& prefix) {
  at::Tensor header = at::zeros({5}, at::kLong);
  if (leader && leader_ok) {
    header[0] = 1;
    for (int d = 0; d < 3; ++d) header[2 + d] = prefix.size(2 + d);
    header[1] = prefix.size(1);
  }
  MAGI_RETURN_IF_ERROR(world.Broadcast(header, 0, "group.prefix_header"));
  if (header[0].item<int64_t>() == 0) {
    if (leader) return absl::OkStatus();
    return absl::AbortedError("worker group: rank 0 could not prepare the job's prefix (it reports why)");
  }
  at::Tensor data = leader ? prefix.contiguous()
                           : at::empty({1, header[1].item<int64_t>(), header[2].item<int64_t>(),
                                        header[3].item<int64_t>(), header[4].item<int64_t>()},
                                       at::kFloat);
  MAGI_RETURN_IF_ERROR(world.Broadcast(data, 0, "group.prefix"));
  prefix = data;
  return absl::OkStatus();
}

// The leader's chunk delivery (issue #16 item 5): each clean latent chunk is VAE-decoded and
// handed to the sink (fMP4 encode + send, JobExecutor) on this thread while the engine goes
// on with the next stage's DiT work, so a chunk's lag from clean to client is its decode and
// encode time, not that plus the rest of its stage. Chunks are delivered one at a time, in
// the order pushed. On a CUDA device the decode runs on its own stream from the pool,
// ordered after the engine's stream by an event recorded at Push().
// A delivery error is kept (the first one) and returned by the next Push() and by Finish(),
// i.e. at the points where the inline decode reported it, so a group meets it where it did.
class ChunkDelivery {
 public:
  using Work = std::function<absl::Status(const at::Tensor& latent, int chunk, int64_t frames)>;
  ChunkDelivery(Work work, c10::Device device)
      : work_(std::move(work)), device_(device), threads_(at::get_num_threads()) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~ChunkDelivery() {
    Abandon();
    thread_.join();
  }
  ChunkDelivery(const ChunkDelivery&) = delete;
  ChunkDelivery& operator=(const ChunkDelivery&) = delete;

  // Queues `latent` (owned by the caller's copy) for delivery; the first error of an earlier
  // delivery instead, if one failed. Waits while two chunks are already queued, so a slow
  // client holds at most that many decoded-to-be chunks here.
  absl::Status Push(at::Tensor latent, int chunk, int64_t frames) {
    Item item{std::move(latent), chunk, frames, std::nullopt};
    if (device_.is_cuda()) {
      c10::impl::VirtualGuardImpl impl(device_.type());
      item.ready.emplace(device_.type());
      item.ready->record(impl.getStream(device_));
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return queue_.size() < kMaxQueued || !error_.ok() || stop_; });
    if (!error_.ok()) return error_;
    queue_.push_back(std::move(item));
    cv_.notify_all();
    return absl::OkStatus();
  }
  // Waits until everything queued is delivered; the first delivery error, if any.
  absl::Status Finish() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return (queue_.empty() && !busy_) || !error_.ok(); });
    return error_;
  }
  absl::Status error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }
  // The run ended early (error, cancel): drops what was not started, waits for the one that was.
  void Abandon() {
    std::unique_lock<std::mutex> lock(mu_);
    stop_ = true;
    queue_.clear();
    cv_.notify_all();
    cv_.wait(lock, [&] { return !busy_; });
  }

 private:
  static constexpr size_t kMaxQueued = 2;
  struct Item {
    at::Tensor latent;
    int chunk = 0;
    int64_t frames = 0;  // video frames it decodes to (ChunkFrameCount)
    std::optional<c10::Event> ready;
  };
  void Loop() {
    at::set_num_threads(threads_);  // ATen's intra-op setting is per thread
    std::optional<c10::StreamGuard> stream;
    if (device_.is_cuda()) {
      c10::impl::VirtualGuardImpl impl(device_.type());
      stream.emplace(impl.getStreamFromGlobalPool(device_));
    }
    while (true) {
      std::optional<Item> item;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        if (!error_.ok()) {  // nothing is delivered after a failed chunk
          queue_.clear();
          cv_.notify_all();
          continue;
        }
        item.emplace(std::move(queue_.front()));
        queue_.pop_front();
        busy_ = true;
      }
      if (item->ready) item->ready->block(stream->current_stream());
      absl::Status s;
      try {
        s = work_(item->latent, item->chunk, item->frames);
      } catch (const std::exception& e) {
        s = absl::InternalError(absl::StrCat("chunk ", item->chunk, " delivery: ", e.what()));
      }
      item.reset();  // the latent is released on this thread, after its stream's use
      std::lock_guard<std::mutex> lock(mu_);
      busy_ = false;
      if (!s.ok() && error_.ok()) {
        error_ = s;
        queue_.clear();
      }
      cv_.notify_all();
    }
  }

  Work work_;
  const c10::Device device_;
  const int threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;  // guarded by mu_
  bool busy_ = false;       // guarded by mu_: an item is being delivered
  bool stop_ = false;       // guarded by mu_
  absl::Status error_;      // guarded by mu_: the first delivery error
  std::thread thread_;
};

}  // namespace

ModelJobRunner::~ModelJobRunner() = default;

absl::StatusOr<std::unique_ptr<ModelJobRunner>> ModelJobRunner::Load(const std::string& model_dir,
                                                                     const ModelRunnerOptions& options) {
  if (model_dir.empty()) return absl::InvalidArgumentError("--model_dir: empty; the model runner needs a model folder");
  const fs::path base(model_dir);
  std::unique_ptr<ModelJobRunner> r(new ModelJobRunner());
  r->options_ = options;
  if (options.max_concurrent_jobs < 1 || options.max_concurrent_jobs > kMaxConcurrentJobs) {
    return absl::InvalidArgumentError(absl::StrCat("--max_jobs_per_group: must be in [1, ", kMaxConcurrentJobs,
                                                   "], got ", options.max_concurrent_jobs));
  }
  const bool rank_group = options.layout.tp_size * options.layout.cp_size > 1 || options.cfg_comm != nullptr ||
                          options.group_comm != nullptr || options.follower;
  if (options.max_concurrent_jobs > 1 && rank_group) {
    if (options.cfg_comm != nullptr &&
        (static_cast<int>(options.cfg_channels.size()) != options.max_concurrent_jobs ||
         options.cfg_channels[0] != options.cfg_comm ||
         std::count(options.cfg_channels.begin(), options.cfg_channels.end(), nullptr) > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--max_jobs_per_group ", options.max_concurrent_jobs, " with --cfg ", options.cfg_comm->size(),
          ": a CFG-parallel group needs one CFG channel per slot (got ", options.cfg_channels.size(),
          ", the first the group's; RankGroup::Join with job_slots)"));
    }
    if (static_cast<int>(options.job_channels.size()) != options.max_concurrent_jobs ||
        options.forward_order == nullptr || options.job_channels[0] != options.group_comm ||
        std::count(options.job_channels.begin(), options.job_channels.end(), nullptr) > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--max_jobs_per_group ", options.max_concurrent_jobs, ": a rank group needs one job channel per slot (got ",
          options.job_channels.size(), ", the first the group's) and a forward-order channel (RankGroup::Join "
          "with job_slots)"));
    }
  }
  MAGI_ASSIGN_OR_RETURN(r->config_, LoadMagiConfig((base / "config.json").string()));
  MAGI_RETURN_IF_ERROR(ValidateMagiConfig(r->config_));
  MAGI_RETURN_IF_ERROR(ValidateEngineConfig(r->config_));
  if (options.cfg_comm != nullptr) {
    MAGI_RETURN_IF_ERROR(ValidateCfgParallel(r->config_.runtime.cfg_number, options.cfg_comm->size(),
                                             absl::StrCat("--cfg ", options.cfg_comm->size(), ", model ", model_dir)));
  }
  if (!options.model_name.empty()) {
    MAGI_RETURN_IF_ERROR(CheckModelName(options.model_name, "--model_name"));
  } else if (!r->config_.serving.name.empty()) {
    r->options_.model_name = r->config_.serving.name;
  } else {
    fs::path folder = base.lexically_normal();
    if (folder.filename().empty()) folder = folder.parent_path();  // "dir/" -> "dir"
    r->options_.model_name = folder.filename().string();
    MAGI_RETURN_IF_ERROR(CheckModelName(
        r->options_.model_name,
        absl::StrCat("model folder '", model_dir, "' (its basename is the default name; set --model_name or "
                     "serving_config.name)")));
  }
  const RuntimeConfig& rt = r->config_.runtime;
  const std::string source = (base / "config.json").string();
  for (auto [field, value] : {std::pair<const char*, const std::string*>{"runtime_config.load", &rt.load},
                              {"runtime_config.t5_pretrained", &rt.t5_pretrained},
                              {"runtime_config.vae_pretrained", &rt.vae_pretrained}}) {
    if (value->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", field, " is empty; the model runner needs it"));
    }
  }
  // DiT (+ the null caption rows stored with it).
  MAGI_ASSIGN_OR_RETURN(r->dit_checkpoint_, Checkpoint::Open(Resolve(base, rt.load)));
  DitModel::Options dit_options;
  dit_options.device = options.device;
  dit_options.distill = r->config_.engine.distill;
  dit_options.layout = options.layout;
  dit_options.tp_comm = options.tp_comm;
  dit_options.cp_comm = options.cp_comm;
  MAGI_ASSIGN_OR_RETURN(r->dit_, DitModel::Load(r->config_.model, *r->dit_checkpoint_, dit_options));
  MAGI_ASSIGN_OR_RETURN(r->null_caption_, LoadNullCaption(*r->dit_checkpoint_, r->config_.model));
  r->denoiser_ = std::make_unique<DitDenoiser>(*r->dit_);
  if (options.max_concurrent_jobs > 1) {
    ForwardBatcherOptions bo;
    bo.max_batch = options.max_concurrent_jobs;
    if (options.forward_order != nullptr) {
      r->order_ = MakeForwardOrder(*options.forward_order);
      bo.order = r->order_.get();
    }
    r->batcher_ = std::make_unique<ForwardBatcher>(*r->dit_, bo);
  }
  // Special tokens (serving_config; the run scripts' PAD_HQ + PAD_DURATION by default).
  const SpecialTokenFlags& flags = r->config_.serving.special_tokens;
  std::unique_ptr<SpecialTokens> tokens;
  if (flags.any()) {
    r->special_token_file_ = (base / "special_tokens.npz").string();
    std::error_code ec;
    if (!fs::is_regular_file(r->special_token_file_, ec)) {
      return absl::FailedPreconditionError(absl::StrCat(
          source, ": serving_config enables ", absl::StrJoin(flags.EnabledNames(), ", "),
          " (PAD_HQ and PAD_DURATION are on unless serving_config turns them off) but ", r->special_token_file_,
          " does not exist; copy MAGI-1's example/assets/special_tokens.npz there, or set serving_config.pad_hq, "
          "serving_config.pad_duration (and any other enabled token) to false"));
    }
    MAGI_ASSIGN_OR_RETURN(tokens, SpecialTokens::Load(r->special_token_file_));
  }
  {
    auto selected = SelectPromptTokens(flags, tokens.get(), r->config_.model.caption_channels);
    if (!selected.ok()) {
      return absl::Status(selected.status().code(),
                          absl::StrCat(r->special_token_file_, ": ", selected.status().message()));
    }
    r->prompt_tokens_ = std::move(*selected);
  }
  // T5 + tokenizer.
  const std::string t5_dir = Resolve(base, rt.t5_pretrained);
  MAGI_ASSIGN_OR_RETURN(r->tokenizer_, T5Tokenizer::Load((fs::path(t5_dir) / "spiece.model").string()));
  c10::Device t5_device(c10::kCPU);
  if (rt.t5_device == "cuda") {
    if (options.device.is_cuda()) {
      t5_device = options.device;
    } else {
      std::fprintf(stderr, "magi-worker: %s: runtime_config.t5_device is \"cuda\" but this worker runs on %s; "
                   "the T5 runs on the CPU\n", source.c_str(), options.device.str().c_str());
    }
  }
  MAGI_ASSIGN_OR_RETURN(r->t5_, T5Encoder::LoadFolder(t5_dir, t5_device));
  if (r->t5_->config().d_model != r->config_.model.caption_channels) {
    return absl::InvalidArgumentError(absl::StrCat(t5_dir, "/config.json: d_model ", r->t5_->config().d_model,
                                                   " must equal the DiT's model_config.caption_channels ",
                                                   r->config_.model.caption_channels));
  }
  if (r->tokenizer_->vocab_size() > r->t5_->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(t5_dir, "/config.json: vocab_size ", r->t5_->config().vocab_size,
                                                   " is smaller than the tokenizer's ", r->tokenizer_->vocab_size()));
  }
  CaptionEncoderOptions co;
  co.max_length = r->config_.model.caption_max_length;
  // The embedding cache's default budget (256 MB of host memory): about 19 prompts of the
  // released models (800 x 4096 float32 = 13 MB each; 16 MB held one), since a T5 on the CPU
  // takes seconds per prompt.
  r->captions_ = std::make_unique<CaptionEncoder>(r->tokenizer_.get(), r->t5_.get(), co);
  // VAE (not on a group follower: only the leader encodes prefixes and decodes chunks).
  if (options.follower) return r;
  ViTVae::Options vo;
  vo.device = options.device;
  // CPU: float32 is both faster and exact; GPU: the reference's bf16 dtype flow.
  vo.compute = options.device.is_cuda() ? VaeCompute::kBFloat16 : VaeCompute::kFloat32;
  const std::string vae_dir = Resolve(base, rt.vae_pretrained);
  MAGI_ASSIGN_OR_RETURN(r->vae_, ViTVae::LoadFolder(vae_dir, vo));
  if (r->vae_->config().z_chans != r->config_.model.latent_channels()) {
    return absl::InvalidArgumentError(absl::StrCat(vae_dir, "/config.json: ddconfig.z_chans ", r->vae_->config().z_chans,
                                                   " must equal the DiT's latent channels ",
                                                   r->config_.model.latent_channels()));
  }
  if (r->vae_->config().patch_length != rt.temporal_downsample_factor) {
    return absl::InvalidArgumentError(absl::StrCat(vae_dir, "/config.json: ddconfig.patch_length ",
                                                   r->vae_->config().patch_length,
                                                   " must equal runtime_config.temporal_downsample_factor ",
                                                   rt.temporal_downsample_factor));
  }
  r->codec_ = std::make_unique<VaeCodec>(VaeCodec::ForPipeline(r->vae_.get(), rt.fps, rt.scale_factor));
  return r;
}

std::string ModelJobRunner::conditioning() const {
  const auto names = config_.serving.special_tokens.EnabledNames();
  return absl::StrCat("special tokens ", names.empty() ? "none" : absl::StrJoin(names, ", "),
                      special_token_file_.empty() ? "" : absl::StrCat(" (", special_token_file_, ")"),
                      ", prev_chunks_scale ", config_.serving.prev_chunks_scale);
}

std::string ModelJobRunner::placement() const {
  std::string vae = "none";
  if (vae_ != nullptr) {
    vae = absl::StrCat(vae_->options().device.str(), vae_->compute_dtype() == at::kBFloat16 ? " bf16" : " float32");
  }
  return absl::StrCat("DiT ", dit_->options().device.str(), " (KV cache there too), VAE ", vae, ", T5 ",
                      t5_->device().str());
}

int ModelJobRunner::frames_per_chunk() const {
  return config_.runtime.chunk_width * config_.runtime.temporal_downsample_factor;
}

std::vector<::magi::internal::v1::ModelInfo> ModelJobRunner::Models() const {
  const RuntimeConfig& rt = config_.runtime;
  ::magi::internal::v1::ModelInfo m;
  m.set_name(options_.model_name);
  m.set_frames_per_chunk(frames_per_chunk());
  m.set_max_frames(options_.max_frames);
  m.set_max_width(options_.max_width);
  m.set_max_height(options_.max_height);
  m.set_default_width(rt.video_size_w);
  m.set_default_height(rt.video_size_h);
  m.set_default_frames(rt.num_frames);
  m.set_default_fps(rt.fps);
  m.set_default_steps(rt.num_steps);
  m.set_max_steps(options_.max_steps);
  for (const auto& name : config_.serving.special_tokens.EnabledNames()) m.add_special_tokens(name);
  // What the networks can run: the VAE decodes whole latent frames, the stage planner needs
  // whole stages, the DiT whole patches (at least two), guidance the configured cfg passes.
  m.set_frames_multiple(rt.temporal_downsample_factor);
  m.set_latent_frames_per_chunk(rt.chunk_width);
  m.set_steps_multiple(NumStepsMultiple(rt.window_size, static_cast<int>(rt.noise2clean_kvrange.size())));
  m.set_size_multiple(kVaeSpatialFactor * config_.model.patch_size);
  m.set_min_size(2 * kVaeSpatialFactor * config_.model.patch_size);
  m.add_cfg_numbers(rt.cfg_number);
  m.set_default_seed(rt.seed);
  return {m};
}

absl::Status ModelJobRunner::Validate(const RunnerJob& job) const {
  const pb::GenerateRequest& r = job.request();
  const RuntimeConfig& rt = config_.runtime;
  const int px = kVaeSpatialFactor * config_.model.patch_size;  // VAE x patch: the DiT's token grid
  if (!r.model().empty() && r.model() != options_.model_name) {
    return Bad("model", absl::StrCat("'", r.model(), "' is not served here; this worker serves '",
                                     options_.model_name, "'"));
  }
  auto size = [&](const char* field, int v, int max) -> absl::Status {
    if (v < 2 * px || v > max || v % px != 0) {
      return Bad(field, absl::StrCat(v, " is not allowed; must be a multiple of ", px, " in [", 2 * px, ", ", max, "]"));
    }
    return absl::OkStatus();
  };
  MAGI_RETURN_IF_ERROR(size("width", r.width(), options_.max_width));
  MAGI_RETURN_IF_ERROR(size("height", r.height(), options_.max_height));
  const int tf = rt.temporal_downsample_factor;
  if (r.num_frames() < tf || r.num_frames() > options_.max_frames || r.num_frames() % tf != 0) {
    return Bad("num_frames", absl::StrCat(r.num_frames(), " is not allowed; must be a multiple of ", tf, " in [", tf,
                                          ", ", options_.max_frames, "] (the VAE's temporal factor)"));
  }
  const int kv = static_cast<int>(rt.noise2clean_kvrange.size());
  const int step_multiple = NumStepsMultiple(rt.window_size, kv);
  if (r.num_steps() < 1 || r.num_steps() > options_.max_steps || r.num_steps() % step_multiple != 0) {
    return Bad("num_steps", absl::StrCat(r.num_steps(), " is not allowed; must be a multiple of ", step_multiple,
                                         " (window_size ", rt.window_size, ", ", kv, " kv ranges) in [",
                                         step_multiple, ", ", options_.max_steps, "]"));
  }
  if (r.guidance().cfg_number() != 0 && r.guidance().cfg_number() != rt.cfg_number) {
    return Bad("guidance.cfg_number",
               absl::StrCat(r.guidance().cfg_number(), " is not allowed for model '", options_.model_name,
                            "'; it runs with cfg_number ", rt.cfg_number, config_.engine.distill ? " (distilled)" : "",
                            " (or 0 = default)"));
  }
  if (r.prompts_size() < 1) return Bad("prompts", "at least one prompt is required");
  // The job's geometry, as the edge computed it, must be this model's.
  if (job.spec.frames_per_chunk() != frames_per_chunk() || job.spec.frames_per_latent() != tf ||
      job.spec.latent_frames_per_chunk() != rt.chunk_width) {
    return Bad("frames_per_chunk", absl::StrCat("the job's chunks of ", job.spec.frames_per_chunk(), " frames (",
                                                job.spec.latent_frames_per_chunk(), " latent x ",
                                                job.spec.frames_per_latent(), ") do not match model '",
                                                options_.model_name, "' (", rt.chunk_width, " x ", tf, ")"));
  }
  const int chunks = (r.num_frames() + frames_per_chunk() - 1) / frames_per_chunk();
  if (job.chunks_total() != chunks || job.start_chunk < 0 || job.start_chunk > job.chunks_total()) {
    return Bad("chunks_total", absl::StrCat("job has ", job.chunks_total(), " chunks from ", job.start_chunk,
                                            "; ", r.num_frames(), " frames make ", chunks));
  }
  // The engine must plan it and make every frame the job streams (v2v: its prefix length is
  // known once the video is decoded; Run() checks it then).
  if (r.mode() != pb::MODE_V2V) {
    const int prefix = job.spec.prefix_latent_frames();
    const int latent_chunks = LatentChunkCount(job.spec.engine_frames(), tf, prefix, rt.chunk_width);
    const int made = latent_chunks * rt.chunk_width * tf;
    if (made < r.num_frames()) {
      return Bad("num_frames", absl::StrCat(r.num_frames(), " frames: the engine makes ", made, " for ",
                                            job.spec.engine_frames(), " engine frames"));
    }
    MagiConfig c = config_;
    c.runtime.video_size_w = r.width();
    c.runtime.video_size_h = r.height();
    c.runtime.num_steps = r.num_steps();
    ArRequest probe;
    probe.num_frames = job.spec.engine_frames();
    if (prefix > 0) {
      probe.prefix = at::zeros({1, config_.model.latent_channels(), prefix, r.height() / kVaeSpatialFactor,
                                r.width() / kVaeSpatialFactor});
    }
    MAGI_ASSIGN_OR_RETURN(std::unique_ptr<ArEngine> engine, ArEngine::Create(c, *denoiser_));
    MAGI_RETURN_IF_ERROR(engine->Plan(probe).status());
  }
  return absl::OkStatus();
}

absl::Status ModelJobRunner::Check(const RunnerJob& job) const { return Validate(job); }

ForwardBatcherStats ModelJobRunner::batch_stats() const {
  return batcher_ ? batcher_->stats() : ForwardBatcherStats{};
}

absl::StatusOr<EncodedChunkPrompt> ModelJobRunner::EncodePrompt(const std::string& text, int from_chunk) const {
  MAGI_ASSIGN_OR_RETURN(auto enc, captions_->Encode(text));
  EncodedChunkPrompt cp;
  cp.from_chunk = from_chunk;
  cp.caption = enc.embedding[0];
  cp.mask = enc.mask[0].to(at::kFloat);
  return cp;
}

absl::StatusOr<ChunkCaptions> ModelJobRunner::Captions(const std::string& prompt, int chunk_num,
                                                       int chunk_offset) const {
  MAGI_ASSIGN_OR_RETURN(EncodedChunkPrompt cp, EncodePrompt(prompt, 0));
  return BuildChunkCaptions({cp}, null_caption_, chunk_num, chunk_offset, prompt_tokens_);
}

absl::StatusOr<at::Tensor> ModelJobRunner::EncodePrefix(const at::Tensor& video) const {
  std::lock_guard<std::mutex> lock(vae_mu_);
  return codec_->EncodePrefix(video);
}

absl::Status ModelJobRunner::Run(const RunnerJob& job, FrameSink& sink) {
  const pb::GenerateRequest& r = job.request();
  MagiConfig c = config_;
  ArRequest req;
  absl::Status prepared = Prepare(job, c, req);
  // In a group every rank takes part in the prefix exchange, whatever failed before it.
  if (job.slot < 0 || job.slot >= max_concurrent_jobs()) {
    return absl::InternalError(absl::StrCat("job slot ", job.slot, " out of range [0, ", max_concurrent_jobs(), ")"));
  }
  Communicator* channel = options_.job_channels.empty() ? options_.group_comm
                                                        : options_.job_channels[static_cast<size_t>(job.slot)];
  if (channel != nullptr && (r.mode() == pb::MODE_I2V || r.mode() == pb::MODE_V2V)) {
    MAGI_RETURN_IF_ERROR(SharePrefix(*channel, !options_.follower, prepared.ok(), req.prefix));
  }
  MAGI_RETURN_IF_ERROR(prepared);
  return Generate(job, c, req, sink);
}

absl::Status ModelJobRunner::Prepare(const RunnerJob& job, MagiConfig& c, ArRequest& req) const {
  MAGI_RETURN_IF_ERROR(Validate(job));
  const pb::GenerateRequest& r = job.request();
  RuntimeConfig& rt = c.runtime;
  rt.video_size_w = r.width();
  rt.video_size_h = r.height();
  rt.num_steps = r.num_steps();
  if (r.guidance().text_scale() > 0) std::fill(rt.text_scales.begin(), rt.text_scales.end(), r.guidance().text_scale());
  if (r.guidance().prefix_scale() > 0) {
    std::fill(rt.prev_chunk_scales.begin(), rt.prev_chunk_scales.end(), r.guidance().prefix_scale());
  }

  req.null_caption = null_caption_;
  req.special_tokens = prompt_tokens_;
  req.seed = r.seed();  // the JobSpec filled the model's default
  for (int i = 0; i < r.prompts_size(); ++i) {
    const auto& p = r.prompts(i);
    auto cp = EncodePrompt(p.text(), p.from_chunk());
    if (!cp.ok()) return Bad(absl::StrCat("prompts[", i, "].text"), std::string(cp.status().message()));
    req.prompts.push_back(*std::move(cp));
  }
  // Prefix (a group follower gets the leader's: SharePrefix); the engine's frame count (video
  // frames it generates after the prefix) is the JobSpec's.
  req.num_frames = job.spec.engine_frames();
  if (options_.follower) {
    if (r.mode() != pb::MODE_UNSPECIFIED && r.mode() != pb::MODE_T2V && r.mode() != pb::MODE_I2V &&
        r.mode() != pb::MODE_V2V) {
      return Bad("mode", absl::StrCat(static_cast<int>(r.mode()), " is not a known mode"));
    }
    return absl::OkStatus();
  }
  if (r.mode() == pb::MODE_I2V) {
    MAGI_ASSIGN_OR_RETURN(RgbFrame image, DecodeImage("image", r.image(), r.width(), r.height()));
    MAGI_ASSIGN_OR_RETURN(at::Tensor z, EncodePrefix(FramesToVideo({image})));
    // On the host: it may travel to the followers over the (Gloo) world group; the engine
    // moves it to the model's device. The first emitted chunk's first frame is the image's.
    req.prefix = z.to(at::kCPU, at::kFloat);
  } else if (r.mode() == pb::MODE_V2V) {
    MAGI_ASSIGN_OR_RETURN(std::vector<RgbFrame> frames,
                          DecodePrefixVideo("prefix_video", r.prefix_video(), r.width(), r.height(), rt.fps));
    MAGI_ASSIGN_OR_RETURN(at::Tensor z, EncodePrefix(FramesToVideo(frames)));
    if (z.size(2) < 1) return Bad("prefix_video", "too short: it encodes to no latent frame");
    req.prefix = z.to(at::kCPU, at::kFloat);
  } else if (r.mode() != pb::MODE_UNSPECIFIED && r.mode() != pb::MODE_T2V) {
    return Bad("mode", absl::StrCat(static_cast<int>(r.mode()), " is not a known mode"));
  }
  return absl::OkStatus();
}

absl::Status ModelJobRunner::Generate(const RunnerJob& job, const MagiConfig& c, const ArRequest& req,
                                      FrameSink& sink) {
  const pb::GenerateRequest& r = job.request();
  const RuntimeConfig& rt = c.runtime;
  EngineOptions eo;
  eo.keep_final_latents = false;
  eo.prev_chunks_scale = config_.serving.prev_chunks_scale;
  eo.schedule = options_.schedule;
  eo.lead_kv_budget_bytes = options_.lead_kv_budget_bytes;
  eo.elide_self_only_copy = options_.elide_self_only_copy;
  eo.cfg_comm = options_.cfg_channels.empty() ? options_.cfg_comm
                                              : options_.cfg_channels[static_cast<size_t>(job.slot)];
  // Several jobs at once: this job's DiT calls join the shared batches from here until its
  // engine is done (the member leaves before the last decodes, so no batch waits for them).
  std::unique_ptr<Denoiser> member;
  if (batcher_) member = batcher_->Join(job.slot);
  MAGI_ASSIGN_OR_RETURN(std::unique_ptr<ArEngine> engine,
                        ArEngine::Create(c, member ? *member : static_cast<Denoiser&>(*denoiser_), eo));

  ChunkLayout layout;
  layout.chunk_width = rt.chunk_width;
  layout.prefix_latent_frames = req.prefix.defined() ? req.prefix.size(2) : 0;
  // Decoded frames not yet handed out, and the next job chunk to hand out: the delivery's
  // (its thread's when it overlaps, this one's otherwise); next_chunk is read for progress.
  std::deque<RgbFrame> pending;
  std::atomic<int> next_chunk{0};
  // Hands out every full job chunk in `pending` (all of it, trimmed, when `final`).
  auto flush = [&](bool final) -> absl::Status {
    while (next_chunk < job.chunks_total()) {
      const int want = job.FrameEnd(next_chunk) - job.FrameBegin(next_chunk);
      if (static_cast<int>(pending.size()) < want) {
        if (!final) return absl::OkStatus();
        return absl::InternalError(absl::StrCat("model runner: the engine made ", job.FrameBegin(next_chunk) +
                                                static_cast<int>(pending.size()), " frames, the job needs ",
                                                r.num_frames()));
      }
      std::vector<RgbFrame> frames(std::make_move_iterator(pending.begin()),
                                   std::make_move_iterator(pending.begin() + want));
      pending.erase(pending.begin(), pending.begin() + want);
      const int index = next_chunk++;
      MAGI_RETURN_IF_ERROR(index < job.start_chunk ? sink.OnPrefixChunk(index, frames) : sink.OnChunk(index, frames));
    }
    return absl::OkStatus();
  };
  // Decodes latent chunk `chunk` (its layout says how many frames it makes) and hands out the
  // job chunks it completes.
  auto deliver = [&](const at::Tensor& latent, int chunk, int64_t frames) -> absl::Status {
    absl::StatusOr<DecodedChunk> decoded = [&] {
      std::lock_guard<std::mutex> lock(vae_mu_);
      return codec_->DecodeChunk(latent, chunk, layout);
    }();
    MAGI_ASSIGN_OR_RETURN(DecodedChunk d, std::move(decoded));
    if (d.frames.size(0) != frames) {
      return absl::InternalError(absl::StrCat("model runner: latent chunk ", chunk, " (", latent.size(2),
                                              " latent frames) decoded to ", d.frames.size(0), " frames, not the ",
                                              frames, " its layout gives"));
    }
    AppendFrames(d.frames, pending);
    return flush(false);
  };

  GenerateCallbacks cb;
  cb.on_captions = options_.on_captions;
  cb.cancelled = [&] { return sink.Cancelled(); };
  // The stop rule needs no decoded frame, so every rank of a group applies it: each chunk's
  // frame count comes from the layout and the pipeline's decode tiles (ChunkFrameCount; v2v's
  // partly-prefix chunk decodes to fewer frames than its latent length x temporal factor);
  // once the job's frames are made the engine stops (v2v asks it for one chunk more than the
  // job streams). The decoding rank checks the count against what it decoded.
  const VaeTileOptions decode_tiles = VaeTileOptions::ForPipeline(config_.runtime.fps);  // the codec's (Load)
  int64_t frames_made = 0;
  std::optional<ChunkDelivery> delivery;
  if (!options_.follower && options_.overlap_decode) {
    delivery.emplace(deliver, vae_->options().device);
  }
  cb.on_chunk = [&](const EmittedChunk& e) -> absl::StatusOr<ChunkAction> {
    const int64_t frames = ChunkFrameCount(e.chunk, layout, decode_tiles, rt.temporal_downsample_factor);
    frames_made += frames;
    if (delivery) {
      MAGI_RETURN_IF_ERROR(delivery->Push(e.latent, e.chunk, frames));
    } else if (!options_.follower) {
      MAGI_RETURN_IF_ERROR(deliver(e.latent, e.chunk, frames));
    }
    return frames_made >= r.num_frames() ? ChunkAction::kStop : ChunkAction::kContinue;
  };
  // Live prompts: a chunk of this attempt about to start asks the sink (a group's ranks ask
  // together: the leader's prompt reaches all) and encodes what it gets. Chunks before
  // start_chunk were made by an earlier attempt with the prompts recorded then; past the
  // job's last chunk nothing is streamed. Engine and job chunks share their index.
  cb.prompt_for_chunk = [&](int chunk) -> absl::StatusOr<std::optional<EncodedChunkPrompt>> {
    if (chunk < job.start_chunk || chunk >= job.chunks_total()) return std::optional<EncodedChunkPrompt>();
    MAGI_ASSIGN_OR_RETURN(std::optional<LivePrompt> live, sink.TakeLivePrompt(chunk));
    if (!live) return std::optional<EncodedChunkPrompt>();
    auto p = EncodePrompt(live->text, chunk);
    if (!p.ok()) return Bad("text", absl::StrCat("live prompt ", live->update_id, ": ", p.status().message()));
    sink.OnLivePromptApplied(*live, chunk);
    return std::optional<EncodedChunkPrompt>(*std::move(p));
  };
  StepProgress last;
  cb.on_progress = [&](const ArProgress& p) {
    StepProgress& sp = last;
    sp.chunk = std::min(std::max(next_chunk.load(), 0), job.chunks_total() - 1);
    sp.step = p.step;
    sp.total_steps = p.total_steps;
    sp.step_seconds = p.step > 0 ? p.seconds / p.step : 0;
    sp.eta_seconds = p.eta_seconds;
    sink.OnProgress(sp);
  };
  absl::StatusOr<GenerateResult> result = engine->Generate(req, cb);
  if (result.ok() && options_.on_result) options_.on_result(*result);
  absl::Status generated = result.status();
  engine.reset();
  member.reset();
  if (batcher_ && !options_.follower) {
    // For operators: how much the slots share (every rank of a group runs the same forwards).
    const ForwardBatcherStats st = batcher_->stats();
    std::fprintf(stderr, "magi-worker: slot %d job done; this worker's DiT calls so far: %lld in %lld forwards, widest %d\n",
                 job.slot, static_cast<long long>(st.calls), static_cast<long long>(st.forwards), st.max_batch);
  }
  if (delivery) {
    if (!generated.ok()) {
      delivery->Abandon();
      // A failed delivery (the stream gone, an encoder error) that made the sink cancel says
      // more than the engine's "cancelled".
      absl::Status delivered = delivery->error();
      return absl::IsCancelled(generated) && !delivered.ok() ? delivered : generated;
    }
    MAGI_RETURN_IF_ERROR(delivery->Finish());
  }
  MAGI_RETURN_IF_ERROR(generated);
  if (frames_made < r.num_frames()) {
    return absl::InternalError(absl::StrCat("model runner: the engine made ", frames_made, " frames, the job needs ",
                                            r.num_frames()));
  }
  if (!options_.follower) MAGI_RETURN_IF_ERROR(flush(true));
  // Stopping after the last job chunk skips the engine's final progress report.
  if (last.step < last.total_steps) {
    last.step = last.total_steps;
    last.chunk = job.chunks_total() - 1;
    last.eta_seconds = 0;
    sink.OnProgress(last);
  }
  return absl::OkStatus();
}

}  // namespace magi
