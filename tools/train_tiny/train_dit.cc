#include "tools/train_tiny/train_dit.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "physics/world.h"
#include "tools/train_tiny/adam.h"
#include "tools/train_tiny/batch_gradient.h"
#include "tools/train_tiny/train_options.h"
#include "worker/engine/ar_engine.h"
#include "worker/engine/chunk_captions.h"
#include "worker/engine/denoiser.h"
#include "worker/engine/stage_plan.h"
#include "worker/engine/timestep_schedule.h"
#include "worker/model/dit.h"
#include "worker/model/safetensors.h"
#include "worker/runner/model_job_runner.h"
#include "worker/vae/vae_codec.h"

namespace magi {
namespace {

using physics::CheckRenderArgs;
using physics::MakeScene;
using physics::MirrorScene;
using physics::RenderScene;
using physics::Scene;
using physics::SplitMix64;

// Held-out scenes: far from any training seed (those are seed * 2^32 + i).
constexpr uint64_t kHeldoutBase = uint64_t{0xD17} << 48;

// One world clip, ready for the DiT: its latent (scale_factor applied) and caption row.
struct Clip {
  at::Tensor latent;  // [1, C, chunks x chunk_width, h, w] float32
  ChunkCaptions captions;  // the scene's caption on every chunk, the null rows
  // Held-out clips: the caption of the same scene with every object's colour the next one of
  // the palette ("a red ball" -> "a green ball").
  ChunkCaptions recoloured;
  // Held-out clips: the caption of the same scene with every object's horizontal velocity
  // reversed ("to the right" -> "to the left").
  ChunkCaptions turned;
  // The share of each latent cell's pixels that show an object: [1, 1, T, h, w] float32.
  at::Tensor objects;
};

absl::Status CheckOptions(const ModelJobRunner& runner, const DitTrainOptions& o) {
  MAGI_RETURN_IF_ERROR(CheckDitTrainOptions(o, runner.frames_per_chunk()));
  const RuntimeConfig& rt = runner.config().runtime;
  if (rt.video_size_h != o.size || rt.video_size_w != o.size) {
    return absl::InvalidArgumentError(absl::StrCat("DiT training: the model set's runtime_config.video_size_h x "
                                                   "video_size_w is ", rt.video_size_h, " x ", rt.video_size_w,
                                                   "; it must equal size x size = ", o.size, " x ", o.size));
  }
  if (runner.codec() == nullptr) return absl::InvalidArgumentError("DiT training: the runner has no VAE (a follower)");
  if (runner.config().model.params_dtype != ParamsDtype::kFloat32) {
    return absl::InvalidArgumentError("DiT training: model_config.params_dtype must be float32");
  }
  return absl::OkStatus();
}

// Whether training scene `scene_seed` is drawn from the world's single-object scenes
// (DitTrainOptions::single_object_share): a uniform draw of its own seed, so the choice of one
// scene does not depend on the others, and share 0 leaves every scene the world's.
bool IsSingleObjectScene(uint64_t scene_seed, double share) {
  if (share <= 0) return false;
  physics::SplitMix64 draw(scene_seed ^ 0x51A6'1E0B'1EC7'5EEDULL);
  return draw.Uniform() < share;
}

// The caption rows of `scene` on `chunks` chunks: its first caption on every chunk, or with
// `per_chunk` each chunk's own (the scene as it is at the chunk's first frame). A chunk whose
// caption is the first one keeps its row: only captions that differ go through the T5 again.
absl::StatusOr<ChunkCaptions> SceneCaptions(const ModelJobRunner& runner, const Scene& scene, int chunks,
                                            bool per_chunk) {
  const std::string first = physics::Caption(scene);
  MAGI_ASSIGN_OR_RETURN(ChunkCaptions all, runner.Captions(first, chunks, 0));
  if (!per_chunk) return all;
  for (int k = 1; k < chunks; ++k) {
    const std::string caption = physics::CaptionAtFrame(scene, k * runner.frames_per_chunk());
    if (caption == first) continue;
    MAGI_ASSIGN_OR_RETURN(ChunkCaptions at_k, runner.Captions(caption, chunks, 0));
    all.text_rows[static_cast<size_t>(k)] = at_k.text_rows[static_cast<size_t>(k)];
    all.text_masks[static_cast<size_t>(k)] = at_k.text_masks[static_cast<size_t>(k)];
  }
  return all;
}

absl::StatusOr<Clip> MakeClip(const ModelJobRunner& runner, uint64_t scene_seed, int size, int chunks,
                              bool recolour = false, bool mirror = false, bool single_object = false,
                              bool per_chunk = false) {
  Scene scene = single_object ? physics::MakeSingleObjectScene(scene_seed) : MakeScene(scene_seed);
  if (mirror) scene = MirrorScene(scene);
  const int frames = chunks * runner.frames_per_chunk();
  MAGI_ASSIGN_OR_RETURN(std::vector<physics::RenderedFrame> rendered, RenderScene(scene, size, frames));
  at::Tensor video = at::empty({1, 3, frames, size, size}, at::kByte);
  for (int f = 0; f < frames; ++f) {
    at::Tensor hwc = at::from_blob(rendered[static_cast<size_t>(f)].rgb.rgb24.data(), {size, size, 3}, at::kByte);
    video.select(0, 0).select(1, f).copy_(hwc.permute({2, 0, 1}));
  }
  Clip clip;
  MAGI_ASSIGN_OR_RETURN(at::Tensor z, runner.codec()->EncodePrefix(video));
  clip.latent = z.to(at::kFloat).contiguous();
  MAGI_ASSIGN_OR_RETURN(clip.objects,
                        LatentObjectShare(rendered, clip.latent.size(2), clip.latent.size(3), clip.latent.size(4)));
  MAGI_ASSIGN_OR_RETURN(clip.captions, SceneCaptions(runner, scene, chunks, per_chunk));
  if (recolour) {
    Scene other = scene;
    const int colours = static_cast<int>(physics::Palette().size());
    for (physics::ObjectState& obj : other.objects) obj.colour = (obj.colour + 1) % colours;
    MAGI_ASSIGN_OR_RETURN(clip.recoloured, SceneCaptions(runner, other, chunks, per_chunk));
    // The caption turned: the mirror's (a caption names no positions, only the directions).
    MAGI_ASSIGN_OR_RETURN(clip.turned, SceneCaptions(runner, MirrorScene(scene), chunks, per_chunk));
  }
  return clip;
}

// The loss of forward `step` of `plan` on `clip` with `noise` (the shape of the clip's
// first clip_end chunks): the mean squared velocity error over the window's noisy chunks,
// each chunk at t weighted 1 + late_weight x t^2 and each cell 1 + object_weight x its object
// share (a weighted mean: 0 and 0 weigh them equally); with null_text, as the guidance's
// context-only pass (ReplayStepArgs).
absl::StatusOr<at::Tensor> StepLoss(const DitModel& dit, const MagiConfig& config, const StagePlan& plan, int step,
                                    const Clip& clip, const at::Tensor& noise, int64_t ctn, double late_weight,
                                    double object_weight, bool null_text) {
  const PlannedStep& ps = plan.steps[static_cast<size_t>(step)];
  const int64_t cw = config.runtime.chunk_width;
  const at::Tensor clean = clip.latent.narrow(2, 0, ps.clip_end * cw);
  at::Tensor x = clean.clone();
  at::Tensor weight = at::zeros({1, 1, ps.clip_end * cw, 1, 1}, at::kFloat);
  for (const PlannedChunk& pc : ps.chunks) {
    if (pc.extra) continue;
    const double t = pc.t_in;
    const int64_t f = pc.chunk * cw;
    x.narrow(2, f, cw).copy_(noise.narrow(2, f, cw) * (1.0 - t) + clean.narrow(2, f, cw) * t);
    weight.narrow(2, f, cw).fill_(1.0 + late_weight * t * t);
  }
  MAGI_ASSIGN_OR_RETURN(DitForwardArgs a, ReplayStepArgs(config, plan, step, x, clip.captions, ctn, null_text));
  MAGI_ASSIGN_OR_RETURN(at::Tensor v, dit.Forward(a));
  if (object_weight > 0) {
    weight = weight * (clip.objects.narrow(2, 0, ps.clip_end * cw) * object_weight + 1.0);
  } else {
    weight = weight.expand({1, 1, ps.clip_end * cw, clean.size(3), clean.size(4)});
  }
  const at::Tensor target = clean - noise;
  const double elements = weight.sum().item<double>() * clean.size(1);
  return ((v - target).pow(2) * weight).sum() / elements;
}

}  // namespace

absl::StatusOr<at::Tensor> LatentObjectShare(const std::vector<physics::RenderedFrame>& frames, int64_t latent_t,
                                             int64_t latent_h, int64_t latent_w) {
  const int64_t n = static_cast<int64_t>(frames.size());
  const int64_t pixels = n == 0 ? 0 : static_cast<int64_t>(frames[0].label.size());
  const int64_t size = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(pixels))));
  if (n == 0 || latent_t <= 0 || latent_h <= 0 || latent_w <= 0 || latent_h != latent_w || size * size != pixels ||
      n % latent_t != 0 || size % latent_h != 0) {
    return absl::InvalidArgumentError(absl::StrCat("object share: ", n, " frames of ", pixels,
                                                   " labels do not divide into a ", latent_t, " x ", latent_h, " x ",
                                                   latent_w, " latent of square cells"));
  }
  at::Tensor labels = at::empty({1, 1, n, size, size}, at::kByte);
  for (int64_t f = 0; f < n; ++f) {
    const std::vector<uint8_t>& l = frames[static_cast<size_t>(f)].label;
    if (static_cast<int64_t>(l.size()) != pixels) {
      return absl::InvalidArgumentError(absl::StrCat("object share: frame ", f, " has ", l.size(), " labels, frame 0 ",
                                                     pixels));
    }
    std::memcpy(labels[0][0][f].data_ptr<uint8_t>(), l.data(), l.size());
  }
  const int64_t ft = n / latent_t, fs = size / latent_h;
  return at::avg_pool3d(labels.ne(0).to(at::kFloat), {ft, fs, fs}, {ft, fs, fs}).contiguous();
}

absl::Status CheckDitTrainOptions(const DitTrainOptions& o, int frames_per_chunk) {
  auto range = [](const char* name, double v, double lo, double hi) {
    return CheckTrainOption("DiT training", name, v, lo, hi);
  };
  MAGI_RETURN_IF_ERROR(range("steps", o.steps, 0, 1000000));
  MAGI_RETURN_IF_ERROR(range("batch", o.batch, 1, 256));
  MAGI_RETURN_IF_ERROR(range("chunks", o.chunks, 2, 16));
  MAGI_RETURN_IF_ERROR(range("learning_rate", o.learning_rate, 1e-8, 1.0));
  MAGI_RETURN_IF_ERROR(range("v2v_fraction", o.v2v_fraction, 0.0, 1.0));
  MAGI_RETURN_IF_ERROR(range("scenes", o.scenes, 1, 100000));
  MAGI_RETURN_IF_ERROR(range("heldout_scenes", o.heldout_scenes, 1, 1024));
  MAGI_RETURN_IF_ERROR(range("workers", o.workers, 1, 256));
  MAGI_RETURN_IF_ERROR(range("late_weight", o.late_weight, 0.0, 1000.0));
  MAGI_RETURN_IF_ERROR(range("object_weight", o.object_weight, 0.0, 1000.0));
  MAGI_RETURN_IF_ERROR(range("ema", o.ema, 0.0, 0.99999));
  MAGI_RETURN_IF_ERROR(range("caption_dropout", o.caption_dropout, 0.0, 1.0));
  MAGI_RETURN_IF_ERROR(range("first_chunk_share", o.first_chunk_share, 0.0, 1.0));
  MAGI_RETURN_IF_ERROR(range("first_chunk_max_t", o.first_chunk_max_t, 0.0, 1.0));
  MAGI_RETURN_IF_ERROR(range("single_object_share", o.single_object_share, 0.0, 1.0));
  if (o.mirror_pairs && o.batch % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("DiT training: batch must be even with mirror_pairs (a scene and its mirror), got ", o.batch));
  }
  MAGI_RETURN_IF_ERROR(CheckRenderArgs(o.size, o.chunks * frames_per_chunk, "size", "chunks x frames per chunk"));
  return absl::OkStatus();
}

absl::StatusOr<DitForwardArgs> ReplayStepArgs(const MagiConfig& config, const StagePlan& plan, int step,
                                              const at::Tensor& latents, const ChunkCaptions& captions,
                                              int64_t tokens_per_chunk, bool null_text) {
  if (step < 0 || step >= plan.num_forward_steps()) {
    return absl::InvalidArgumentError(absl::StrCat("replay: step ", step, " is outside the plan's [0, ",
                                                   plan.num_forward_steps(), ")"));
  }
  const PlannedStep& ps = plan.steps[static_cast<size_t>(step)];
  const RuntimeConfig& rt = config.runtime;
  const int rows = ps.clip_end;
  if (latents.dim() != 5 || latents.size(0) != 1 || latents.size(2) < static_cast<int64_t>(rows) * rt.chunk_width) {
    return absl::InvalidArgumentError(absl::StrCat("replay: latents must be [1, C, >= ", rows * rt.chunk_width,
                                                   ", h, w] for step ", step));
  }
  if (static_cast<int>(captions.text_rows.size()) < rows) {
    return absl::InvalidArgumentError(absl::StrCat("replay: captions for ", captions.text_rows.size(),
                                                   " chunks; step ", step, " needs ", rows));
  }
  // A clean chunk's key range is the one of its clean pass: the prefix pass, or the step
  // where it is the extra clean chunk.
  std::map<int, std::array<int64_t, 2>> clean_kv;
  const int64_t ctn = tokens_per_chunk;
  if (plan.has_prefix_pass) {
    for (int j = 0; j < plan.prefix_pass.chunks; ++j) {
      clean_kv[j] = {plan.prefix_pass.kv_begin[j] * ctn, plan.prefix_pass.kv_end[j] * ctn};
    }
  }
  for (const PlannedStep& other : plan.steps) {
    for (const PlannedChunk& pc : other.chunks) {
      if (pc.extra) clean_kv.emplace(pc.chunk, std::array<int64_t, 2>{pc.kv_begin * ctn, pc.kv_end * ctn});
    }
  }
  std::vector<float> t(static_cast<size_t>(rows), plan.options.clean_t);
  std::vector<std::array<int64_t, 2>> kv(static_cast<size_t>(rows));
  std::vector<bool> noisy(static_cast<size_t>(rows), false);
  for (int j = 0; j < ps.clip_start; ++j) {
    auto it = clean_kv.find(j);
    if (it == clean_kv.end()) {
      return absl::InternalError(absl::StrCat("replay: chunk ", j, " is clean at step ", step,
                                              " but no pass of the plan made it clean"));
    }
    kv[static_cast<size_t>(j)] = it->second;
  }
  for (const PlannedChunk& pc : ps.chunks) {
    kv[static_cast<size_t>(pc.chunk)] = {pc.kv_begin * ctn, pc.kv_end * ctn};
    if (pc.extra) continue;
    t[static_cast<size_t>(pc.chunk)] = pc.t_in;
    noisy[static_cast<size_t>(pc.chunk)] = true;
  }
  std::vector<at::Tensor> ys, masks;
  at::Tensor kv_range = at::empty({rows, 2}, at::kLong);
  for (int r = 0; r < rows; ++r) {
    const bool text = noisy[static_cast<size_t>(r)] && !null_text;
    ys.push_back(text ? captions.text_rows[static_cast<size_t>(r)] : captions.null_row);
    masks.push_back(text ? captions.text_masks[static_cast<size_t>(r)] : captions.null_mask);
    kv_range[r][0] = kv[static_cast<size_t>(r)][0];
    kv_range[r][1] = kv[static_cast<size_t>(r)][1];
  }
  const std::vector<int> intervals = DistillIntervals(rt.num_steps, config.engine.shortcut_mode);
  DitForwardArgs a;
  a.x = latents.narrow(2, 0, static_cast<int64_t>(rows) * rt.chunk_width).to(at::kFloat);
  a.t = at::from_blob(t.data(), {1, rows}, at::kFloat).clone();
  a.y = at::stack(ys).unsqueeze(1).to(at::kFloat);
  a.xattn_mask = at::stack(masks).unsqueeze(1).to(at::kFloat);
  a.caption_dropout_mask = at::full({1}, null_text, at::kBool);
  a.kv_range = kv_range;
  a.denoising_range_num = rows;
  a.num_steps = rt.num_steps;
  a.distill_interval = intervals.empty() ? 1 : intervals[static_cast<size_t>(ps.idx)];
  return a;
}

absl::StatusOr<DitTrainResult> TrainDit(const ModelJobRunner& runner, const DitTrainOptions& o) {
  MAGI_RETURN_IF_ERROR(CheckOptions(runner, o));
  const auto t0 = std::chrono::steady_clock::now();
  const MagiConfig& config = runner.config();
  const RuntimeConfig& rt = config.runtime;
  const ModelConfig& m = config.model;
  const DitModel& dit = runner.dit();
  DitTrainResult result;

  // The engine's plans of a clip: t2v, and v2v with the first chunk as the prefix.
  DitDenoiser denoiser(dit);
  MAGI_ASSIGN_OR_RETURN(std::unique_ptr<ArEngine> engine, ArEngine::Create(config, denoiser));
  const int fpc = runner.frames_per_chunk();
  const int h = o.size / 8, w = o.size / 8;
  ArRequest request;
  request.num_frames = o.chunks * fpc;
  MAGI_ASSIGN_OR_RETURN(StagePlan t2v, engine->Plan(request));
  request.num_frames = (o.chunks - 1) * fpc;
  request.prefix = at::zeros({1, m.latent_channels(), rt.chunk_width, h, w}, at::kFloat);
  MAGI_ASSIGN_OR_RETURN(StagePlan v2v, engine->Plan(request));
  const int64_t ctn = (rt.chunk_width / m.t_patch_size) * (h / m.patch_size) * (w / m.patch_size);
  result.plan_steps = t2v.num_forward_steps() + v2v.num_forward_steps();
  // The t2v steps whose window holds chunk 0 still noisy.
  std::vector<int> first_chunk_steps;
  std::vector<double> first_chunk_t;  // chunk 0's noise level at each of them
  for (int step = 0; step < t2v.num_forward_steps(); ++step) {
    for (const PlannedChunk& pc : t2v.steps[static_cast<size_t>(step)].chunks) {
      if (pc.chunk == 0 && !pc.extra) {
        first_chunk_steps.push_back(step);
        first_chunk_t.push_back(pc.t_in);
      }
    }
  }
  if (first_chunk_steps.empty()) return absl::InternalError("DiT training: the t2v plan never denoises chunk 0");
  // The first-chunk steps first_chunk_share draws from: those at most first_chunk_max_t.
  std::vector<int> drawn_first_steps;
  for (size_t k = 0; k < first_chunk_steps.size(); ++k) {
    if (first_chunk_t[k] <= o.first_chunk_max_t) drawn_first_steps.push_back(first_chunk_steps[k]);
  }
  if (drawn_first_steps.empty()) {
    std::vector<std::string> levels;
    for (double t : first_chunk_t) levels.push_back(absl::StrFormat("%.4f", t));
    return absl::InvalidArgumentError(absl::StrCat("DiT training: first_chunk_max_t ", o.first_chunk_max_t,
                                                   " is below every first-chunk step's noise level (",
                                                   absl::StrJoin(levels, ", "), ")"));
  }

  // Data: every training scene encoded once; the held-out ones too.
  std::vector<Clip> clips, heldout, mirrored;
  for (int i = 0; i < o.scenes; ++i) {
    const uint64_t scene_seed = (o.seed << 32) + static_cast<uint64_t>(i);
    const bool single = IsSingleObjectScene(scene_seed, o.single_object_share);
    MAGI_ASSIGN_OR_RETURN(Clip c, MakeClip(runner, scene_seed, o.size, o.chunks, /*recolour=*/false,
                                           /*mirror=*/false, single, o.chunk_captions));
    clips.push_back(std::move(c));
    if (o.mirror_pairs) {
      MAGI_ASSIGN_OR_RETURN(Clip m, MakeClip(runner, scene_seed, o.size, o.chunks, /*recolour=*/false,
                                             /*mirror=*/true, single, o.chunk_captions));
      mirrored.push_back(std::move(m));
    }
  }
  for (int i = 0; i < o.heldout_scenes; ++i) {
    MAGI_ASSIGN_OR_RETURN(Clip c, MakeClip(runner, kHeldoutBase + static_cast<uint64_t>(i), o.size, o.chunks,
                                           /*recolour=*/true, /*mirror=*/false, /*single_object=*/false,
                                           o.chunk_captions));
    heldout.push_back(std::move(c));
  }
  {
    std::vector<at::Tensor> all;
    for (const Clip& c : clips) all.push_back(c.latent.flatten());
    result.latent_std = at::cat(all).std().item<double>();
  }

  // The held-out loss, and the caption, colour and direction gains: on the t2v plan's steps,
  // the mean loss with the next held-out scene's caption, with the scene's caption recoloured,
  // and (first chunk's steps) with it turned, minus that with the scene's own (the same noise).
  struct Heldout {
    double loss = 0;
    double caption_gain = 0;
    double colour_gain = 0;
    double first_chunk_colour_gain = 0;
    double first_chunk_direction_gain = 0;
    std::vector<std::pair<double, double>> direction_gain_by_level;  // (chunk 0's t_in, gain)
  };
  auto heldout_loss = [&]() -> absl::StatusOr<Heldout> {
    at::NoGradGuard no_grad;
    at::Generator gen = at::detail::createCPUGenerator(7);
    double sum = 0, gain = 0, colour_gain = 0, first_colour_gain = 0, first_direction_gain = 0;
    int n = 0, n_gain = 0, n_first = 0;
    std::vector<double> by_step(first_chunk_steps.size(), 0.0);
    for (size_t i = 0; i < heldout.size(); ++i) {
      const Clip& clip = heldout[i];
      const Clip miscaptioned{clip.latent, heldout[(i + 1) % heldout.size()].captions, {}};
      const Clip recoloured{clip.latent, clip.recoloured, {}};
      const Clip turned{clip.latent, clip.turned, {}};
      for (const StagePlan* plan : {&t2v, &v2v}) {
        for (int step = 0; step < plan->num_forward_steps(); ++step) {
          const int rows = plan->steps[static_cast<size_t>(step)].clip_end;
          const at::Tensor clean = clip.latent.narrow(2, 0, rows * rt.chunk_width);
          at::Tensor noise = at::randn(clean.sizes(), gen, clean.options());
          MAGI_ASSIGN_OR_RETURN(at::Tensor loss,
                                StepLoss(dit, config, *plan, step, clip, noise, ctn, 0.0, 0.0, false));
          sum += loss.item<double>();
          ++n;
          if (plan == &t2v) {
            MAGI_ASSIGN_OR_RETURN(at::Tensor other,
                                  StepLoss(dit, config, *plan, step, miscaptioned, noise, ctn, 0.0, 0.0, false));
            gain += other.item<double>() - loss.item<double>();
            MAGI_ASSIGN_OR_RETURN(at::Tensor recolour,
                                  StepLoss(dit, config, *plan, step, recoloured, noise, ctn, 0.0, 0.0, false));
            colour_gain += recolour.item<double>() - loss.item<double>();
            const auto at = std::find(first_chunk_steps.begin(), first_chunk_steps.end(), step);
            if (at != first_chunk_steps.end()) {
              first_colour_gain += recolour.item<double>() - loss.item<double>();
              MAGI_ASSIGN_OR_RETURN(at::Tensor turn,
                                    StepLoss(dit, config, *plan, step, turned, noise, ctn, 0.0, 0.0, false));
              first_direction_gain += turn.item<double>() - loss.item<double>();
              by_step[static_cast<size_t>(at - first_chunk_steps.begin())] += turn.item<double>() - loss.item<double>();
              ++n_first;
            }
            ++n_gain;
          }
        }
      }
    }
    std::vector<std::pair<double, double>> by_level;
    for (size_t k = 0; k < first_chunk_steps.size(); ++k) {
      by_level.emplace_back(first_chunk_t[k], by_step[k] / static_cast<double>(heldout.size()));
    }
    return Heldout{sum / n, gain / n_gain, colour_gain / n_gain, first_colour_gain / n_first,
                   first_direction_gain / n_first, std::move(by_level)};
  };

  try {
    std::map<std::string, at::Tensor> params;
    MAGI_ASSIGN_OR_RETURN(params, dit.NamedWeights());
    // A set stored in float16 or bfloat16 (--store_dtype) trains in float32.
    for (auto& [name, t] : params) {
      if (t.scalar_type() != at::kFloat) t.set_data(t.detach().to(at::kFloat));
    }
    if (o.zero_init_output) {
      auto it = params.find("final_linear.linear.weight");
      if (it == params.end()) return absl::InternalError("DiT training: the model has no final_linear.linear.weight");
      it->second.set_data(at::zeros_like(it->second.detach()));
    }
    MAGI_ASSIGN_OR_RETURN(const Heldout before, heldout_loss());
    result.heldout_loss_before = before.loss;
    result.caption_gain_before = before.caption_gain;
    result.colour_gain_before = before.colour_gain;
    result.first_chunk_colour_gain_before = before.first_chunk_colour_gain;
    result.first_chunk_direction_gain_before = before.first_chunk_direction_gain;
    Adam adam(params);
    result.parameters = adam.parameters();
    std::vector<std::string> names;
    std::vector<at::Tensor> trainable;
    for (auto& [name, t] : params) {
      names.push_back(name);
      trainable.push_back(t);
    }
    std::vector<at::Tensor> average;
    if (o.ema > 0) {
      for (const at::Tensor& t : trainable) average.push_back(t.detach().clone());
    }
    at::Generator gen = at::detail::createCPUGenerator(o.seed);
    SplitMix64 pick(o.seed * 0x9E3779B97F4A7C15ULL + 17);
    // One sample of a batch, drawn on this thread in batch order, so the draws do not depend
    // on the worker count (BatchGradient computes them, bit-equal for any count).
    struct Sample {
      const Clip* clip = nullptr;
      const StagePlan* plan = nullptr;
      int step = 0;
      at::Tensor noise;
      bool null_text = false;
    };
    std::vector<Sample> batch(static_cast<size_t>(o.batch));
    std::vector<double> cost(static_cast<size_t>(o.batch));  // a sample's chunks in its forward
    const BatchGradient batches(o.workers);
    for (int step = 1; step <= o.steps; ++step) {
      for (size_t i = 0; i < batch.size(); ++i) {
        Sample& s = batch[i];
        if (o.mirror_pairs && i % 2 == 1) {  // the mirror of the sample before, drawing nothing
          const Sample& first = batch[i - 1];
          s = first;
          s.clip = &mirrored[static_cast<size_t>(first.clip - clips.data())];
          cost[i] = cost[i - 1];
          continue;
        }
        s.clip = &clips[pick.Next() % clips.size()];
        const bool use_v2v = pick.Uniform() < o.v2v_fraction;
        s.plan = use_v2v ? &v2v : &t2v;
        if (!use_v2v && o.first_chunk_share > 0 && pick.Uniform() < o.first_chunk_share) {
          s.step = drawn_first_steps[pick.Next() % drawn_first_steps.size()];
        } else {
          s.step = static_cast<int>(pick.Next() % static_cast<uint64_t>(s.plan->num_forward_steps()));
        }
        const int rows = s.plan->steps[static_cast<size_t>(s.step)].clip_end;
        s.noise = at::randn(s.clip->latent.narrow(2, 0, rows * rt.chunk_width).sizes(), gen, s.clip->latent.options());
        s.null_text = o.caption_dropout > 0 && pick.Uniform() < o.caption_dropout;
        cost[i] = rows;
      }
      MAGI_ASSIGN_OR_RETURN(const double loss_value,
                            batches.MeanGradient(trainable, o.batch, "DiT training", [&](int i) {
                              const Sample& s = batch[static_cast<size_t>(i)];
                              return StepLoss(dit, config, *s.plan, s.step, *s.clip, s.noise, ctn, o.late_weight,
                                              o.object_weight, s.null_text);
                            }, cost));
      if (!std::isfinite(loss_value)) {
        return absl::InternalError(absl::StrCat("DiT training: the loss is ", loss_value, " at step ", step));
      }
      const double norm = adam.Step(DecayedRate(o.learning_rate, step, o.steps));
      if (!average.empty()) {
        at::NoGradGuard no_grad;
        const double decay = std::min(o.ema, (1.0 + step) / (10.0 + step));
        for (size_t k = 0; k < trainable.size(); ++k) average[k].mul_(decay).add_(trainable[k].detach(), 1.0 - decay);
      }
      if (o.on_step) o.on_step(step, loss_value, norm);
    }
    adam.Finish();
    if (!average.empty()) {
      MAGI_ASSIGN_OR_RETURN(const Heldout raw, heldout_loss());
      result.heldout_loss_raw = raw.loss;
      at::NoGradGuard no_grad;
      for (size_t k = 0; k < trainable.size(); ++k) {
        result.raw_weights[names[k]] = trainable[k].detach().clone();
        trainable[k].detach().copy_(average[k]);
      }
    }
    MAGI_ASSIGN_OR_RETURN(const Heldout after, heldout_loss());
    result.heldout_loss_after = after.loss;
    result.caption_gain_after = after.caption_gain;
    result.colour_gain_after = after.colour_gain;
    result.first_chunk_colour_gain_after = after.first_chunk_colour_gain;
    result.first_chunk_direction_gain_after = after.first_chunk_direction_gain;
    result.first_chunk_direction_gain_by_level = after.direction_gain_by_level;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("DiT training failed: ", e.what()));
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

absl::Status WriteDitWeights(const std::map<std::string, at::Tensor>& weights, const std::string& path) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : weights) out[name] = t.detach().contiguous();
  return WriteSafetensors(path, out, {{"format", "pt"}, {"generator", "magi-train-tiny dit"}});
}

absl::Status WriteDitWeights(const ModelJobRunner& runner, const std::string& path) {
  MAGI_ASSIGN_OR_RETURN(auto weights, runner.dit().NamedWeights());
  return WriteDitWeights(weights, path);
}

}  // namespace magi
