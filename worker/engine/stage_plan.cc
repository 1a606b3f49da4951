#include "worker/engine/stage_plan.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace magi {
namespace {

absl::Status Bad(const std::string& what) { return absl::InvalidArgumentError(absl::StrCat("stage plan: ", what)); }

absl::Status Validate(const PlanOptions& o) {
  if (o.chunk_width < 1) return Bad(absl::StrCat("chunk_width must be >= 1, got ", o.chunk_width));
  if (o.chunk_num < 1) return Bad(absl::StrCat("chunk_num must be >= 1, got ", o.chunk_num));
  if (o.window_size < 1) return Bad(absl::StrCat("window_size must be >= 1, got ", o.window_size));
  if (o.num_steps < 1) return Bad(absl::StrCat("num_steps must be >= 1, got ", o.num_steps));
  if (o.num_steps % o.window_size != 0) {
    return Bad(absl::StrCat("num_steps (", o.num_steps, ") must be a multiple of window_size (", o.window_size,
                            "); otherwise chunks never reach t = 1"));
  }
  if (!o.noise2clean_kvrange.empty()) {
    const int n = static_cast<int>(o.noise2clean_kvrange.size());
    if (o.num_steps % n != 0) {
      return Bad(absl::StrCat("num_steps (", o.num_steps, ") must be a multiple of the length of noise2clean_kvrange (",
                              n, ")"));
    }
    for (int r : o.noise2clean_kvrange) {
      if (r < 1) return Bad(absl::StrCat("noise2clean_kvrange entries must be >= 1, got ", r));
    }
  }
  if (o.clean_chunk_kvrange != -1 && o.clean_chunk_kvrange < 1) {
    return Bad(absl::StrCat("clean_chunk_kvrange must be -1 or >= 1, got ", o.clean_chunk_kvrange));
  }
  if (static_cast<int>(o.t_schedule.size()) != o.num_steps + 1) {
    return Bad(absl::StrCat("t_schedule must have num_steps + 1 = ", o.num_steps + 1, " entries, got ",
                            o.t_schedule.size()));
  }
  if (o.prefix_frames < 0) return Bad(absl::StrCat("prefix_frames must be >= 0, got ", o.prefix_frames));
  if (o.prefix_frames >= o.chunk_num * o.chunk_width) {
    return Bad(absl::StrCat("prefix_frames (", o.prefix_frames, ") must be less than the latent length chunk_num * ",
                            "chunk_width = ", o.chunk_num * o.chunk_width, ": nothing would be generated"));
  }
  return absl::OkStatus();
}

// keep_cache_from of every step (suffix minimum, in execution order, of what the steps read
// from the cache) and max_cached_chunks (chunks the windowed cache holds after each write:
// the clean ones, from the prefix pass or their extra clean pass, at or above the floor).
void FillCacheFloors(StagePlan& plan) {
  const int total = plan.num_forward_steps();
  int keep = plan.options.chunk_num;
  for (int s = total - 1; s >= 0; --s) {
    PlannedStep& st = plan.steps[s];
    const bool cache_active = st.slice_point > 0 || st.extra_clean_chunk;
    if (cache_active) keep = std::min(keep, st.cache_read_begin);
    st.keep_cache_from = keep;
  }
  int written_end = plan.has_prefix_pass ? plan.chunk_offset : 0;
  plan.max_cached_chunks = 0;
  for (const auto& st : plan.steps) {
    if (st.stored_chunk_end() > st.stored_chunk_begin() && !st.drop_cache_writes) {
      written_end = std::max(written_end, st.stored_chunk_end());
    }
    plan.max_cached_chunks = std::max(plan.max_cached_chunks, written_end - std::min(written_end, st.keep_cache_from));
  }
}

}  // namespace

const char* ScheduleName(Schedule schedule) {
  return schedule == Schedule::kStreamFirst ? "stream_first" : "reference";
}

absl::StatusOr<Schedule> ParseSchedule(const std::string& flag, const std::string& value) {
  if (value == "reference") return Schedule::kReference;
  if (value == "stream_first") return Schedule::kStreamFirst;
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " must be 'reference' or 'stream_first', got '", value, "'"));
}

absl::StatusOr<int64_t> ParseLeadKvBudgetMb(const std::string& flag, const std::string& value) {
  constexpr int64_t kMaxMb = int64_t{1} << 30;
  int64_t mb = 0;
  if (!absl::SimpleAtoi(value, &mb) || mb < -1 || mb > kMaxMb) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " must be an integer MiB count in [0, ", kMaxMb,
                                                   "] or -1 (no limit), got '", value, "'"));
  }
  return mb < 0 ? -1 : mb << 20;
}

int NumStepsMultiple(int window_size, int kv_range_count) {
  const int w = window_size > 0 ? window_size : 1;
  return kv_range_count > 0 ? std::lcm(w, kv_range_count) : w;
}

int LatentChunkCount(int num_frames, int temporal_downsample_factor, int prefix_frames, int chunk_width) {
  const int latent = num_frames / temporal_downsample_factor + prefix_frames;
  return (latent + chunk_width - 1) / chunk_width;
}

absl::StatusOr<StagePlan> PlanStages(const PlanOptions& o) {
  MAGI_RETURN_IF_ERROR(Validate(o));
  StagePlan plan;
  plan.options = o;
  const int ws = o.window_size;
  const int cw = o.chunk_width;
  const int off = o.prefix_frames / cw;
  const int d = o.num_steps / ws;
  plan.chunk_offset = off;
  plan.steps_per_stage = d;
  plan.num_stages = o.chunk_num + ws - 1 - off;
  const int list_len = static_cast<int>(o.noise2clean_kvrange.size());
  const int q = list_len > 0 ? o.num_steps / list_len : 1;
  const int clean_span =
      o.clean_chunk_kvrange != -1 ? o.clean_chunk_kvrange : (list_len > 0 ? o.noise2clean_kvrange.back() : 0);

  // Key range of the chunk `c` at denoise step `ds` (§2.8.2).
  auto kv_begin_of = [&](int c, int ds) {
    if (list_len == 0) return 0;
    const int span = ds == o.num_steps ? clean_span : o.noise2clean_kvrange[ds / q];
    return std::max(0, c + 1 - span);
  };

  if (off > 0) {
    plan.has_prefix_pass = true;
    plan.prefix_pass.chunks = off;
    // generate_kvrange_for_prefix_video: clean span, else last list entry, else 8.
    int span = o.clean_chunk_kvrange != -1 ? o.clean_chunk_kvrange : (list_len > 0 ? o.noise2clean_kvrange.back() : 8);
    for (int j = 0; j < off; ++j) {
      plan.prefix_pass.kv_begin.push_back(std::max(0, j + 1 - span));
      plan.prefix_pass.kv_end.push_back(j + 1);
    }
  }

  std::vector<int> count(o.chunk_num, 0);
  const int total = plan.num_stages * d;
  plan.steps.reserve(total);
  for (int s = 0; s < total; ++s) {
    PlannedStep st;
    st.step = s;
    st.stage = s / d;
    st.idx = s % d;
    const int i = off + st.stage;
    st.clip_start = std::max(off, i - ws + 1);
    st.clip_end = std::min(o.chunk_num, i + 1);
    const int t_start = std::max(0, i - o.chunk_num + 1);
    const int t_end = std::min(ws, i - off + 1);
    if (t_end - t_start != st.clip_end - st.clip_start) {
      return absl::InternalError(absl::StrCat("stage plan: window [", st.clip_start, ", ", st.clip_end,
                                              ") and slots [", t_start, ", ", t_end, ") differ in size at step ", s));
    }
    st.extra_clean_chunk = st.clip_start > off && st.idx == 0;
    st.slice_point = st.extra_clean_chunk ? st.clip_start - 1 : st.clip_start;
    if (st.extra_clean_chunk) {
      PlannedChunk e;
      e.chunk = st.clip_start - 1;
      e.extra = true;
      e.denoise_step = o.num_steps;
      e.t_in = o.clean_t;
      e.kv_begin = kv_begin_of(e.chunk, e.denoise_step);
      e.kv_end = e.chunk + 1;
      st.chunks.push_back(e);
    }
    for (int c = st.clip_start; c < st.clip_end; ++c) {
      // Oldest chunk first, slot (t_end − 1) − (c − clip_start).
      const int slot = t_end - 1 - (c - st.clip_start);
      PlannedChunk pc;
      pc.chunk = c;
      pc.denoise_step = slot * d + st.idx;
      pc.t_in = o.t_schedule[pc.denoise_step];
      pc.t_before = o.t_schedule[pc.denoise_step];
      pc.t_after = o.t_schedule[pc.denoise_step + 1];
      pc.kv_begin = kv_begin_of(c, pc.denoise_step);
      pc.kv_end = c + 1;
      st.chunks.push_back(pc);
    }
    // try_pad_prefix_video: chunks wholly inside the prefix would run at t = 1.0 (never
    // reached since slice_point >= chunk_offset; kept for fidelity).
    if (o.prefix_frames > st.slice_point * cw) {
      const int num_clean_t = (o.prefix_frames - st.slice_point * cw) / cw;
      for (int k = 0; k < num_clean_t && k < st.num_chunks(); ++k) st.chunks[k].t_in = 1.0f;
    }
    st.nearly_clean = static_cast<double>(st.chunks[st.first_noisy()].t_in) > o.nearly_clean_threshold;

    const bool cache_active = st.slice_point > 0 || st.extra_clean_chunk;
    st.cache_read_begin = st.slice_point;
    if (cache_active) {
      for (const auto& pc : st.chunks) st.cache_read_begin = std::min(st.cache_read_begin, pc.kv_begin);
    }

    for (int c = st.clip_start; c < st.clip_end; ++c) ++count[c];
    if (count[st.clip_start] == o.num_steps) {
      const int c = st.clip_start;
      st.finished_chunk = c;
      st.emit_index = c - off;
      if (o.prefix_frames > 0) {
        if ((c + 1) * cw > o.prefix_frames) {
          st.emit = true;
          st.emit_frame_begin = (c == 0 && o.prefix_frames == 1) ? 0 : std::max(c * cw, o.prefix_frames);
          st.emit_frame_end = (c + 1) * cw;
        }
      } else {
        st.emit = true;
        st.emit_frame_begin = c * cw;
        st.emit_frame_end = (c + 1) * cw;
      }
    }
    plan.steps.push_back(std::move(st));
  }

  FillCacheFloors(plan);
  return plan;
}

absl::StatusOr<StagePlan> StreamFirstPlan(const StagePlan& ref, int max_record_steps) {
  if (ref.schedule != Schedule::kReference) {
    return absl::InvalidArgumentError("stream-first plan: the input must be a reference-order plan (PlanStages())");
  }
  StagePlan plan = ref;
  plan.schedule = Schedule::kStreamFirst;
  plan.lead_kv_steps = 0;
  plan.lead_recompute_steps = 0;
  plan.steps.clear();
  const int lead = ref.chunk_offset;
  const int n_steps = ref.options.num_steps;
  const int first_phase = std::min(n_steps, ref.num_forward_steps());
  // Reference steps s < num_steps hold the lead chunk (first in the window, never with an
  // extra chunk: clip_start == chunk_offset until it is clean).
  std::vector<bool> read_later(first_phase, false);
  for (int s = 0; s < first_phase; ++s) {
    const PlannedStep& r = ref.steps[s];
    if (r.chunks.empty() || r.chunks[0].chunk != lead || r.extra_clean_chunk) {
      return absl::InternalError(absl::StrCat("stream-first plan: reference step ", s, " does not start with chunk ",
                                              lead));
    }
    for (size_t k = 1; k < r.chunks.size(); ++k) {
      if (r.chunks[k].kv_begin <= lead) read_later[s] = true;
    }
  }
  // Of the steps read later, the first max_record_steps are recorded, the others recomputed.
  plan.lead_kv = max_record_steps == 0 ? LeadKv::kRecompute : LeadKv::kRecord;
  std::vector<bool> record(first_phase, false), recompute(first_phase, false);
  for (int s = 0, kept = 0; s < first_phase; ++s) {
    if (!read_later[s]) continue;
    if (max_record_steps < 0 || kept < max_record_steps) {
      record[s] = true;
      ++kept;
      ++plan.lead_kv_steps;
    } else {
      recompute[s] = true;
      ++plan.lead_recompute_steps;
    }
  }
  // Phase 1: the lead chunk alone.
  for (int s = 0; s < first_phase; ++s) {
    PlannedStep st = ref.steps[s];
    st.chunks.resize(1);
    st.clip_start = lead;
    st.clip_end = lead + 1;
    st.lead_chunk = lead;
    st.drop_cache_writes = lead == 0;
    st.record_lead_kv = record[s];
    st.keep_lead_input = recompute[s];
    st.cache_read_begin = st.slice_point > 0 ? std::min(st.slice_point, st.chunks[0].kv_begin) : st.slice_point;
    plan.steps.push_back(std::move(st));
  }
  // Phase 2: the reference order, the lead chunk taken out (or recomputed) while noisy.
  for (int s = 0; s < ref.num_forward_steps(); ++s) {
    const PlannedStep& r = ref.steps[s];
    if (s >= first_phase) {
      plan.steps.push_back(r);
      continue;
    }
    if (r.chunks.size() < 2) continue;  // nothing but the lead chunk: done in phase 1
    PlannedStep st = r;
    st.lead_chunk = lead;
    st.nearly_clean = false;  // the reference's blend is the lead chunk's (its first noisy chunk)
    st.finished_chunk = -1;
    st.emit = false;
    st.emit_index = -1;
    st.emit_frame_begin = st.emit_frame_end = 0;
    st.drop_cache_writes = lead == 0;
    if (recompute[s]) {
      st.recompute_lead = true;
    } else {
      st.chunks.erase(st.chunks.begin());
      st.clip_start = lead + 1;
      st.slice_point = lead + 1;
      st.serve_lead_kv = true;
      st.release_lead_kv = record[s];
    }
    const bool cache_active = st.slice_point > 0;
    st.cache_read_begin = st.slice_point;
    if (cache_active) {
      for (const auto& pc : st.chunks) st.cache_read_begin = std::min(st.cache_read_begin, pc.kv_begin);
    }
    plan.steps.push_back(std::move(st));
  }
  FillCacheFloors(plan);
  return plan;
}

int64_t StreamFirstRecordBytes(const StagePlan& plan, int cfg_number, int num_layers, int64_t tokens_per_chunk,
                               int kv_groups, int head_dim, int element_bytes) {
  if (plan.schedule != Schedule::kStreamFirst) return 0;
  const int64_t passes = cfg_number == 3 ? 2 : 1;
  return static_cast<int64_t>(plan.lead_kv_steps) * passes * num_layers * tokens_per_chunk * kv_groups * 2 *
         head_dim * element_bytes;
}

std::string DescribePlan(const StagePlan& plan) {
  std::string out;
  if (plan.has_prefix_pass) {
    absl::StrAppend(&out, "prefix pass: chunks [0,", plan.prefix_pass.chunks, ") at clean_t\n");
  }
  for (const auto& st : plan.steps) {
    absl::StrAppend(&out, absl::StrFormat("s=%d stage=%d/%d sp=%d", st.step, st.stage, st.idx, st.slice_point));
    for (const auto& c : st.chunks) {
      absl::StrAppend(&out, absl::StrFormat(" [c%d%s ds=%d t=%.6f kv=[%d,%d)]", c.chunk, c.extra ? "*" : "",
                                            c.denoise_step, c.t_in, c.kv_begin, c.kv_end));
    }
    if (st.nearly_clean) absl::StrAppend(&out, " nearly-clean");
    if (st.record_lead_kv) absl::StrAppend(&out, " record-lead-kv");
    if (st.keep_lead_input) absl::StrAppend(&out, " keep-lead-input");
    if (st.serve_lead_kv) absl::StrAppend(&out, st.release_lead_kv ? " lead-kv-recorded" : " lead-kv-zeros");
    if (st.recompute_lead) absl::StrAppend(&out, " recompute-lead");
    absl::StrAppend(&out, " keep>=", st.keep_cache_from);
    if (st.finished_chunk >= 0) {
      absl::StrAppend(&out, st.emit ? " emit c" : " finish c", st.finished_chunk);
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace magi
