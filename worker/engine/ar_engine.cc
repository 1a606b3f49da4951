#include "worker/engine/ar_engine.h"

#include <chrono>
#include <exception>
#include <map>
#include <optional>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "parallel/communicator.h"
#include "worker/engine/kv_write_filter.h"
#include "worker/engine/lead_kv_recording.h"
#include "worker/engine/timestep_schedule.h"
#include "worker/engine/windowed_kv_cache.h"
#include "worker/model/kv_cache.h"

namespace magi {
namespace {

absl::Status Bad(const std::string& msg) { return absl::InvalidArgumentError(msg); }

std::string Shape(const at::Tensor& t) { return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]"); }

struct Geometry {
  int64_t channels = 16;  // latent channels
  int64_t h = 0, w = 0;   // latent height / width
  int chunk_num = 0;
  int prefix_frames = 0;
  int64_t latent_frames = 0;
  int64_t tokens_per_chunk = 0;
};

absl::StatusOr<Geometry> RequestGeometry(const MagiConfig& c, const ArRequest& r) {
  const RuntimeConfig& rt = c.runtime;
  const ModelConfig& m = c.model;
  Geometry g;
  g.channels = m.latent_channels();
  if (rt.video_size_h % 8 != 0 || rt.video_size_w % 8 != 0) {
    return Bad(absl::StrCat("video_size_h / video_size_w (", rt.video_size_h, " x ", rt.video_size_w,
                            ") must be multiples of 8 (the VAE's spatial factor)"));
  }
  g.h = rt.video_size_h / 8;
  g.w = rt.video_size_w / 8;
  if (g.h % m.patch_size != 0 || g.w % m.patch_size != 0 || g.h / m.patch_size < 2 || g.w / m.patch_size < 2) {
    return Bad(absl::StrCat("video_size_h / video_size_w (", rt.video_size_h, " x ", rt.video_size_w,
                            ") must be multiples of ", 8 * m.patch_size, " and at least ", 16 * m.patch_size));
  }
  if (rt.chunk_width % m.t_patch_size != 0) {
    return Bad(absl::StrCat("chunk_width (", rt.chunk_width, ") must be a multiple of t_patch_size (", m.t_patch_size, ")"));
  }
  const int num_frames = r.num_frames.value_or(rt.num_frames);
  if (num_frames < rt.temporal_downsample_factor && !r.prefix.defined()) {
    return Bad(absl::StrCat("num_frames (", num_frames, ") must be at least temporal_downsample_factor (",
                            rt.temporal_downsample_factor, ")"));
  }
  if (num_frames < 0 || num_frames > 1000000) return Bad(absl::StrCat("num_frames must be in [0, 1000000], got ", num_frames));
  if (r.prefix.defined()) {
    if (r.prefix.dim() != 5 || r.prefix.size(0) != 1 || r.prefix.size(1) != g.channels || r.prefix.size(3) != g.h ||
        r.prefix.size(4) != g.w || r.prefix.size(2) < 1) {
      return Bad(absl::StrCat("prefix must be a latent [1, ", g.channels, ", P >= 1, ", g.h, ", ", g.w, "], got ",
                              Shape(r.prefix)));
    }
    g.prefix_frames = static_cast<int>(r.prefix.size(2));
  }
  g.chunk_num = LatentChunkCount(num_frames, rt.temporal_downsample_factor, g.prefix_frames, rt.chunk_width);
  if (g.chunk_num * rt.chunk_width <= g.prefix_frames) {
    return Bad(absl::StrCat("num_frames (", num_frames, ") leaves no frame to generate after the ", g.prefix_frames,
                            "-frame prefix"));
  }
  g.latent_frames = static_cast<int64_t>(g.chunk_num) * rt.chunk_width;
  g.tokens_per_chunk = (rt.chunk_width / m.t_patch_size) * (g.h / m.patch_size) * (g.w / m.patch_size);
  return g;
}

PlanOptions MakePlanOptions(const MagiConfig& c, const Geometry& g, std::vector<float> schedule) {
  PlanOptions o;
  o.chunk_num = g.chunk_num;
  o.window_size = c.runtime.window_size;
  o.num_steps = c.runtime.num_steps;
  o.chunk_width = c.runtime.chunk_width;
  o.prefix_frames = g.prefix_frames;
  o.noise2clean_kvrange = c.runtime.noise2clean_kvrange;
  o.clean_chunk_kvrange = c.runtime.clean_chunk_kvrange;
  o.t_schedule = std::move(schedule);
  o.clean_t = static_cast<float>(c.runtime.clean_t);
  o.nearly_clean_threshold = c.engine.distill_nearly_clean_chunk_threshold;
  return o;
}

int KvElementBytes(const MagiConfig& c) { return c.model.params_dtype == ParamsDtype::kBFloat16 ? 2 : 4; }

// The plan of `options.schedule`: stream-first records the lead chunk's K/V of as many steps
// as fit the budget (all with no budget) and recomputes it in the others.
absl::StatusOr<StagePlan> SchedulePlan(const MagiConfig& c, const Geometry& g, std::vector<float> sched,
                                       const EngineOptions& options, int kv_groups) {
  MAGI_ASSIGN_OR_RETURN(StagePlan plan, PlanStages(MakePlanOptions(c, g, std::move(sched))));
  if (options.schedule == Schedule::kReference) return plan;
  MAGI_ASSIGN_OR_RETURN(StagePlan recorded, StreamFirstPlan(plan));
  const int64_t bytes = StreamFirstRecordBytes(recorded, c.runtime.cfg_number, c.model.num_layers, g.tokens_per_chunk,
                                               kv_groups, c.model.kv_channels, KvElementBytes(c));
  if (options.lead_kv_budget_bytes < 0 || bytes <= options.lead_kv_budget_bytes) return recorded;
  const int64_t per_step = bytes / recorded.lead_kv_steps;  // bytes > budget >= 0: some step is recorded
  return StreamFirstPlan(plan, static_cast<int>(options.lead_kv_budget_bytes / per_step));
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

absl::Status ValidateEngineConfig(const MagiConfig& c) {
  const RuntimeConfig& rt = c.runtime;
  if (rt.cfg_number == 2) {
    return Bad("runtime_config.cfg_number: 2 is not supported (the reference implements 1 for distilled / fp8 "
               "models and 3 for base models)");
  }
  if (rt.cfg_number != 1 && rt.cfg_number != 3) {
    return Bad(absl::StrCat("runtime_config.cfg_number must be 1 or 3, got ", rt.cfg_number));
  }
  if (rt.window_size < 1) return Bad(absl::StrCat("runtime_config.window_size must be >= 1, got ", rt.window_size));
  if (rt.num_steps < 1) return Bad(absl::StrCat("runtime_config.num_steps must be >= 1, got ", rt.num_steps));
  if (rt.num_steps % rt.window_size != 0) {
    return Bad(absl::StrCat("runtime_config.num_steps (", rt.num_steps, ") must be a multiple of window_size (",
                            rt.window_size, ")"));
  }
  if (!rt.noise2clean_kvrange.empty() && rt.num_steps % static_cast<int>(rt.noise2clean_kvrange.size()) != 0) {
    return Bad(absl::StrCat("runtime_config.num_steps (", rt.num_steps,
                            ") must be a multiple of the length of noise2clean_kvrange (",
                            rt.noise2clean_kvrange.size(), ")"));
  }
  if (rt.chunk_width < 1) return Bad(absl::StrCat("runtime_config.chunk_width must be >= 1, got ", rt.chunk_width));
  if (rt.temporal_downsample_factor < 1) {
    return Bad(absl::StrCat("runtime_config.temporal_downsample_factor must be >= 1, got ",
                            rt.temporal_downsample_factor));
  }
  if (rt.cfg_number == 3 && (rt.prev_chunk_scales.size() != rt.cfg_t_range.size() ||
                             rt.text_scales.size() != rt.cfg_t_range.size() || rt.cfg_t_range.empty())) {
    return Bad(absl::StrCat("runtime_config.prev_chunk_scales (", rt.prev_chunk_scales.size(),
                            ") and text_scales (", rt.text_scales.size(),
                            ") must have as many entries as cfg_t_range (", rt.cfg_t_range.size(), "), at least 1"));
  }
  if (!(rt.clean_t > 0 && rt.clean_t <= 1)) return Bad(absl::StrCat("runtime_config.clean_t must be in (0, 1], got ", rt.clean_t));
  return absl::OkStatus();
}

ArEngine::ArEngine(const MagiConfig& config, Denoiser& model, const EngineOptions& options)
    : config_(config), model_(model), options_(options) {}
ArEngine::~ArEngine() = default;

absl::StatusOr<std::unique_ptr<ArEngine>> ArEngine::Create(const MagiConfig& config, Denoiser& model,
                                                           const EngineOptions& options) {
  MAGI_RETURN_IF_ERROR(ValidateEngineConfig(config));
  if (options.cfg_comm != nullptr) {
    MAGI_RETURN_IF_ERROR(ValidateCfgParallel(config.runtime.cfg_number, options.cfg_comm->size(), "cfg group"));
  }
  return std::unique_ptr<ArEngine>(new ArEngine(config, model, options));
}

absl::StatusOr<StagePlan> ArEngine::Plan(const ArRequest& request) const {
  MAGI_ASSIGN_OR_RETURN(Geometry g, RequestGeometry(config_, request));
  MAGI_ASSIGN_OR_RETURN(std::vector<float> sched,
                        TimestepSchedule(config_.runtime.num_steps, config_.engine.shortcut_mode));
  return SchedulePlan(config_, g, std::move(sched), options_, model_.kv_cache_groups(config_.model));
}

absl::StatusOr<GenerateResult> ArEngine::Generate(const ArRequest& request, const GenerateCallbacks& cb) {
  try {
    return GenerateImpl(request, cb);
  } catch (const std::exception& e) {
    // ATen reports device, shape and allocation errors (a GPU out of memory, a tensor on the
    // wrong device) by exception; keep them inside this module.
    return absl::InternalError(absl::StrCat("generation failed: ", e.what()));
  }
}

absl::StatusOr<GenerateResult> ArEngine::GenerateImpl(const ArRequest& request, const GenerateCallbacks& cb) {
  const auto start = std::chrono::steady_clock::now();
  const MagiConfig& c = config_;
  const RuntimeConfig& rt = c.runtime;
  MAGI_ASSIGN_OR_RETURN(Geometry g, RequestGeometry(c, request));
  MAGI_ASSIGN_OR_RETURN(std::vector<float> sched, TimestepSchedule(rt.num_steps, c.engine.shortcut_mode));
  MAGI_ASSIGN_OR_RETURN(StagePlan plan, SchedulePlan(c, g, sched, options_, model_.kv_cache_groups(c.model)));
  const std::vector<int> intervals = DistillIntervals(rt.num_steps, c.engine.shortcut_mode);
  const int off = plan.chunk_offset;
  const int cw = rt.chunk_width;
  const int64_t ctn = g.tokens_per_chunk;
  if (request.null_caption.defined() &&
      (request.null_caption.dim() != 2 || request.null_caption.size(0) != c.model.caption_max_length ||
       request.null_caption.size(1) != c.model.caption_channels)) {
    return Bad(absl::StrCat("null_caption must be [", c.model.caption_max_length, ", ", c.model.caption_channels,
                            "], got ", Shape(request.null_caption)));
  }
  if (!request.null_caption.defined()) return Bad("null_caption is required (LoadNullCaption)");
  // The prompts in force (live updates replace their tail) and the rows they give.
  std::vector<EncodedChunkPrompt> prompts = request.prompts;
  MAGI_ASSIGN_OR_RETURN(ChunkCaptions captions,
                        BuildChunkCaptions(prompts, request.null_caption, g.chunk_num, off, request.special_tokens));
  if (cb.on_captions) cb.on_captions(captions);

  GuidanceConfig gopt;
  gopt.cfg_number = rt.cfg_number;
  gopt.cfg_t_range = rt.cfg_t_range;
  gopt.prev_chunk_scales = rt.prev_chunk_scales;
  gopt.text_scales = rt.text_scales;
  gopt.prev_chunks_scale = options_.prev_chunks_scale;
  gopt.elide_self_only_copy = options_.elide_self_only_copy;
  gopt.chunk_width = cw;
  gopt.tokens_per_chunk = ctn;
  gopt.cfg_comm = options_.cfg_comm;
  MAGI_RETURN_IF_ERROR(ValidateGuidanceConfig(gopt));

  const c10::Device dev = model_.device();
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  // Initial noise: one draw over the whole latent (§7), duplicated rows are not kept.
  at::Tensor X;
  const std::vector<int64_t> latent_shape = {1, g.channels, g.latent_frames, g.h, g.w};
  if (request.noise.defined()) {
    if (request.noise.sizes() != at::IntArrayRef(latent_shape)) {
      return Bad(absl::StrCat("noise must be [", absl::StrJoin(latent_shape, ", "), "], got ", Shape(request.noise)));
    }
    X = request.noise.to(dev, at::kFloat).clone();
  } else {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
        static_cast<uint64_t>(request.seed.value_or(rt.seed)));
    X = at::randn(latent_shape, gen, f32).to(dev);
  }
  at::Tensor prefix;
  if (request.prefix.defined()) prefix = request.prefix.to(dev, at::kFloat);

  // KV cache.
  const auto kv_options =
      at::TensorOptions().dtype(c.model.params_dtype == ParamsDtype::kBFloat16 ? at::kBFloat16 : at::kFloat).device(dev);
  WindowedKvCache* windowed = nullptr;
  cache_.reset();
  if (options_.kv_cache == KvCacheMode::kDense) {
    cache_ = std::make_unique<DenseKvCache>(c.model.num_layers, g.latent_frames / c.model.t_patch_size *
                                                                    (g.h / c.model.patch_size) * (g.w / c.model.patch_size),
                                            model_.kv_cache_groups(c.model), c.model.kv_channels, kv_options);
  } else {
    auto w = std::make_unique<WindowedKvCache>(c.model.num_layers, ctn, model_.kv_cache_groups(c.model), c.model.kv_channels,
                                               kv_options);
    windowed = w.get();
    cache_ = std::move(w);
  }

  // CFG-parallel: the context pass's cache writes reach the text pass's rank (CfgCacheMirror).
  std::optional<CfgCacheMirror> mirror;
  if (options_.cfg_comm != nullptr && options_.cfg_comm->size() > 1) mirror.emplace(*options_.cfg_comm, cache_.get(), dev);
  KvCache* real_cache = mirror ? mirror->cache() : cache_.get();
  // The windowed cache keeps only rows a later pass reads (windowed_kv_cache.h): in the
  // denoising loop that is a chunk's K/V from its clean pass (the extra clean chunk). The
  // window chunks' noisy K/V, which the reference writes at every step, are always
  // overwritten by that pass before any read, so they are not stored (a read of a chunk
  // that never had its clean pass stays an error of the windowed cache). The dense cache
  // keeps every write, as the reference does.
  std::optional<KvWriteFilter> clean_writes;
  if (windowed) clean_writes.emplace(real_cache);
  KvCache* loop_cache = clean_writes ? &*clean_writes : real_cache;

  GenerateResult result;
  int dispatch = 0;
  auto forward_observer = [&](int call, const DitForwardArgs& a, const at::Tensor& out) {
    ++result.model_calls;
    if (cb.on_forward) cb.on_forward(dispatch, call, a, out);
  };
  auto chunk_rows = [&](const std::vector<int>& chunks, bool extra_first, GuidanceStep& st) {
    for (size_t k = 0; k < chunks.size(); ++k) {
      const bool null_text = extra_first && k == 0;
      st.text_rows.push_back(null_text ? captions.null_row : captions.text_rows[chunks[k]]);
      st.text_masks.push_back(null_text ? captions.null_mask : captions.text_masks[chunks[k]]);
      st.null_rows.push_back(captions.null_row);
      st.null_masks.push_back(captions.null_mask);
    }
  };

  // v2v: the prefix-feature pass fills the cache with the clean prefix chunks (§2.8.3).
  if (plan.has_prefix_pass) {
    GuidanceStep st;
    const int n = plan.prefix_pass.chunks;
    st.x = prefix.narrow(2, 0, static_cast<int64_t>(n) * cw);
    std::vector<int> chunks;
    for (int j = 0; j < n; ++j) {
      chunks.push_back(j);
      st.t.push_back(static_cast<float>(rt.clean_t));
      st.kv_range.push_back({plan.prefix_pass.kv_begin[j] * ctn, plan.prefix_pass.kv_end[j] * ctn});
    }
    chunk_rows(chunks, false, st);
    // Prefix chunks take the null rows on both sides.
    st.text_rows = st.null_rows;
    st.text_masks = st.null_masks;
    st.slice_point = 0;
    st.extract_prefix_video_feature = true;
    st.num_steps = rt.num_steps;
    st.distill_interval = intervals.empty() ? 1 : intervals[0];
    MAGI_ASSIGN_OR_RETURN(at::Tensor v, GuidedVelocity(model_, real_cache, gopt, st, forward_observer, cb.cancelled));
    if (mirror) MAGI_RETURN_IF_ERROR(mirror->Sync());
    if (cb.on_dispatch) cb.on_dispatch(dispatch, st, v);
    ++dispatch;
    ++result.forward_steps;
  }

  int chunks_total = 0;
  for (const auto& st : plan.steps) chunks_total += st.emit ? 1 : 0;
  std::vector<at::Tensor> emitted;
  const int total = plan.num_forward_steps();
  result.schedule = plan.schedule;
  result.lead_kv = plan.lead_kv;
  result.lead_kv_steps = plan.lead_kv_steps;
  result.lead_recompute_steps = plan.lead_recompute_steps;
  // Stream-first: the lead chunk's recorded K/V (or, recompute variant, its input latents).
  LeadKvRecording lead_kv(off, ctn, c.model.num_layers);
  std::map<int, at::Tensor> lead_inputs;
  int next_unstarted = 0;  // absolute index of the first chunk no step has denoised yet
  for (int i = 0; i < total; ++i) {
    const PlannedStep& ps = plan.steps[i];
    // Chunks this step starts: ask for a live prompt before each (chunk order). Before the
    // cancellation check: in a rank group that check is the agreement a rank that failed
    // here meets the others at.
    int last_chunk = -1;
    for (const auto& pc : ps.chunks) last_chunk = std::max(last_chunk, pc.chunk);
    for (; cb.prompt_for_chunk && next_unstarted <= last_chunk; ++next_unstarted) {
      if (next_unstarted < off) continue;  // a prefix chunk: not generated
      const int rel = next_unstarted - off;
      MAGI_ASSIGN_OR_RETURN(std::optional<EncodedChunkPrompt> update, cb.prompt_for_chunk(rel));
      if (!update) continue;
      while (!prompts.empty() && prompts.back().from_chunk >= rel) prompts.pop_back();
      update->from_chunk = rel;
      prompts.push_back(std::move(*update));
      MAGI_ASSIGN_OR_RETURN(captions, BuildChunkCaptions(prompts, request.null_caption, g.chunk_num, off,
                                                         request.special_tokens));
    }
    if (cb.cancelled && cb.cancelled()) return absl::CancelledError("generation cancelled");
    if (windowed) windowed->DropBelow(ps.keep_cache_from);
    GuidanceStep st;
    const int n = ps.num_chunks();
    at::Tensor x_in = X.narrow(2, static_cast<int64_t>(ps.slice_point) * cw, static_cast<int64_t>(n) * cw).clone();
    // Prefix padding (try_pad_prefix_video): the prefix overwrites the frames it covers.
    if (g.prefix_frames > ps.slice_point * cw) {
      const int64_t len = std::min<int64_t>(g.prefix_frames - ps.slice_point * cw, x_in.size(2));
      x_in.narrow(2, 0, len).copy_(prefix.narrow(2, static_cast<int64_t>(ps.slice_point) * cw, len));
    }
    if (ps.keep_lead_input) lead_inputs[ps.step] = x_in.narrow(2, 0, cw).clone();
    if (ps.recompute_lead) {
      auto it = lead_inputs.find(ps.step);
      if (it == lead_inputs.end()) {
        return absl::InternalError(absl::StrCat("stream-first: no lead-chunk input kept for step ", ps.step));
      }
      x_in.narrow(2, 0, cw).copy_(it->second);
      lead_inputs.erase(it);
    }
    st.x = x_in;
    std::vector<int> chunks;
    for (const auto& pc : ps.chunks) {
      chunks.push_back(pc.chunk);
      st.t.push_back(pc.t_in);
      st.kv_range.push_back({pc.kv_begin * ctn, pc.kv_end * ctn});
    }
    chunk_rows(chunks, ps.extra_clean_chunk, st);
    st.slice_point = ps.slice_point;
    st.fwd_extra_1st_chunk = ps.extra_clean_chunk;
    st.distill_nearly_clean_chunk = ps.nearly_clean;
    st.num_steps = rt.num_steps;
    st.distill_interval = intervals[ps.idx];
    // The cache this pass sees: the request's, or an adapter that records / serves the lead
    // chunk's K/V (pass 0: the cache-writing pass; pass 1: cfg 3's text pass).
    if (clean_writes) {
      clean_writes->SetWritableRows(static_cast<int64_t>(ps.stored_chunk_begin()) * ctn,
                                    static_cast<int64_t>(ps.stored_chunk_end()) * ctn);
    }
    KvCache* pass_cache = loop_cache;
    std::unique_ptr<KvCache> main_adapter, text_adapter;
    const bool cache_writes = !ps.drop_cache_writes;
    if (ps.record_lead_kv) {
      main_adapter = lead_kv.Recorder(loop_cache, ps.step, 0, cache_writes);
      if (rt.cfg_number == 3) {
        text_adapter = lead_kv.Recorder(loop_cache, ps.step, 1, false);
      }
      st.record_kv = true;
      // cfg 3 has no appended copy: the flag only keeps the DiT from writing the last chunk's
      // K/V (spec §2.8.1), which here is the lead chunk's that is to be recorded.
      if (rt.cfg_number == 3) st.distill_nearly_clean_chunk = false;
    } else if (ps.serve_lead_kv) {
      main_adapter = lead_kv.Server(loop_cache, ps.step, 0, cache_writes);
      if (rt.cfg_number == 3) text_adapter = lead_kv.Server(loop_cache, ps.step, 1, false);
    }
    if (main_adapter) pass_cache = main_adapter.get();
    st.text_pass_cache = text_adapter.get();
    MAGI_ASSIGN_OR_RETURN(at::Tensor v, GuidedVelocity(model_, pass_cache, gopt, st, forward_observer, cb.cancelled));
    if (mirror) MAGI_RETURN_IF_ERROR(mirror->Sync());
    if (cb.on_dispatch) cb.on_dispatch(dispatch, st, v);
    ++dispatch;
    ++result.forward_steps;
    if (ps.release_lead_kv) lead_kv.Release(ps.step);

    // Euler step of every window chunk (the extra chunk's slot is dropped, and so is a lead
    // chunk that was only recomputed for its K/V).
    const int first = ps.first_noisy() + (ps.recompute_lead ? 1 : 0);
    for (int k = first; k < n; ++k) {
      const PlannedChunk& pc = ps.chunks[k];
      const float dt = pc.t_after - pc.t_before;
      at::Tensor xk = x_in.narrow(2, static_cast<int64_t>(k) * cw, cw);
      at::Tensor vk = v.narrow(2, static_cast<int64_t>(k) * cw, cw);
      X.narrow(2, static_cast<int64_t>(pc.chunk) * cw, cw).copy_(at::add(xk, at::mul(vk, static_cast<double>(dt))));
    }
    if (ps.emit) {
      EmittedChunk e;
      e.index = ps.emit_index;
      e.chunk = ps.finished_chunk;
      e.chunks_total = chunks_total;
      e.frame_begin = ps.emit_frame_begin;
      e.frame_end = ps.emit_frame_end;
      e.latent = X.narrow(2, ps.emit_frame_begin, ps.emit_frame_end - ps.emit_frame_begin).to(at::kCPU).clone();
      e.step = i;
      e.seconds = Seconds(start);
      if (result.chunks_emitted == 0) result.first_chunk_seconds = e.seconds;
      ++result.chunks_emitted;
      if (options_.keep_final_latents) emitted.push_back(e.latent);
      if (cb.on_chunk) {
        MAGI_ASSIGN_OR_RETURN(const ChunkAction action, cb.on_chunk(e));
        if (action == ChunkAction::kStop) {
          result.stopped = i + 1 < total;
          break;
        }
      }
    }
    if (cb.on_progress) {
      ArProgress p;
      p.step = i + 1;
      p.total_steps = total;
      p.chunks_done = result.chunks_emitted;
      p.chunks_total = chunks_total;
      p.window_begin = ps.clip_start;
      p.window_end = ps.clip_end;
      p.seconds = Seconds(start);
      p.eta_seconds = p.seconds / p.step * (total - p.step);
      cb.on_progress(p);
    }
  }
  result.lead_kv_peak_bytes = lead_kv.peak_bytes();
  if (options_.keep_final_latents && !emitted.empty()) result.final_latents = at::cat(emitted, 2);
  if (windowed) result.kv_peak_bytes = windowed->peak_bytes();
  result.seconds = Seconds(start);
  return result;
}

}  // namespace magi
