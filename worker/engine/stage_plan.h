// The stage planner: which chunks every DiT forward of an autoregressive generation
// covers, at which timesteps, with which key ranges, and which chunk it finishes
// (spec pipeline.md §2.4-2.8, §9; reference SampleTransport).
//
// PlanStages() is a pure function of its options (no tensors, no model): the same plan
// drives one request, a batch of requests, and resumption from a prefix. All indices are
// in chunk units unless a name says "frame"; token ranges are chunk ranges × tokens per
// chunk. Plans are plain values: copyable, immutable after creation, thread-compatible.
#ifndef MAGI_WORKER_ENGINE_STAGE_PLAN_H_
#define MAGI_WORKER_ENGINE_STAGE_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace magi {

struct PlanOptions {
  int chunk_num = 0;       // chunks of the latent, prefix chunks included (§1.5)
  int window_size = 4;     // chunks in flight
  int num_steps = 0;       // denoising steps per chunk
  int chunk_width = 6;     // latent frames per chunk
  int prefix_frames = 0;   // P: prefix latent frames (0 = t2v, 1 = i2v, more = v2v)
  // Attention span (chunks, itself included) by denoise-step quarter; empty = full causal.
  std::vector<int> noise2clean_kvrange;
  int clean_chunk_kvrange = 1;  // span of a clean chunk; -1 = last entry of the list
  // t schedule, num_steps + 1 float32 values (TimestepSchedule()).
  std::vector<float> t_schedule;
  float clean_t = 0.9999f;  // t of the extra clean chunk and of prefix chunks (fp32)
  double nearly_clean_threshold = 0.3;  // distill_nearly_clean_chunk when first t > this
};

// One chunk of a forward's input, in input order.
struct PlannedChunk {
  int chunk = 0;         // absolute chunk index
  bool extra = false;    // the just-finished chunk re-run at clean_t (fwd_extra_1st_chunk)
  int denoise_step = 0;  // a·d + idx for window chunks; num_steps for the extra chunk
  float t_in = 0;        // timestep fed to the model
  float t_before = 0;    // integration: x += v · (t_after − t_before); unused for extra
  float t_after = 0;
  int kv_begin = 0;      // key range [kv_begin, kv_end) in chunks of the whole video
  int kv_end = 0;
};

// One dispatcher call (one Euler step of every window chunk).
struct PlannedStep {
  int step = 0;           // global step s
  int stage = 0;          // s / d
  int idx = 0;            // s % d, also the distill interval index
  int clip_start = 0;     // window [clip_start, clip_end) of noisy chunks
  int clip_end = 0;
  bool extra_clean_chunk = false;
  bool nearly_clean = false;  // distill_nearly_clean_chunk
  int slice_point = 0;        // first chunk of x (clip_start, or clip_start − 1 with extra)
  std::vector<PlannedChunk> chunks;  // extra (if any) first, then the window oldest first
  // Chunks [cache_read_begin, slice_point) are read from the KV cache by this step
  // (== slice_point when nothing is read; the cache is active anyway when sp > 0).
  int cache_read_begin = 0;
  // No step from this one on reads a cache row below this chunk: rows under it may be dropped.
  int keep_cache_from = 0;
  int finished_chunk = -1;        // chunk that is clean after this step, or -1
  // When finished_chunk is emitted: latent frames [emit_frame_begin, emit_frame_end) and
  // the index the reference reports (chunk − chunk_offset). emit == false for prefix-only.
  bool emit = false;
  int emit_frame_begin = 0;
  int emit_frame_end = 0;
  int emit_index = -1;

  // Stream-first schedule only (StreamFirstPlan; defaults elsewhere). `step`, `stage` and
  // `idx` stay the reference step's, so timesteps, intervals and emission are unchanged.
  // lead_chunk: the first emitted chunk, run alone to the end before the others (-1: none).
  int lead_chunk = -1;
  // Record lead_chunk's per-layer K/V of this step: a later pass of the same reference step
  // reads it (phase 1).
  bool record_lead_kv = false;
  // lead_chunk is out of x (slice_point = lead_chunk + 1); its cache rows come from the
  // recording of this reference step, zeros where none was kept (no kv range reaches them).
  bool serve_lead_kv = false;
  // The recording of this reference step is not read after this pass: free it.
  bool release_lead_kv = false;
  // lead_chunk is in x only to recompute the K/V later chunks read (recompute variant): its
  // velocity is dropped, and x starts at its latent of this step recorded in phase 1.
  bool recompute_lead = false;
  // Recompute variant, phase 1: keep lead_chunk's input latent of this step for that pass.
  bool keep_lead_input = false;
  // The reference's pass would not write the cache here (t2v before the lead chunk is clean:
  // slice_point 0); cache writes that the moved slice point or recording causes are dropped.
  bool drop_cache_writes = false;

  int num_chunks() const { return static_cast<int>(chunks.size()); }
  int first_noisy() const { return extra_clean_chunk ? 1 : 0; }
  // Chunks [stored_chunk_begin, stored_chunk_end) of this pass's cache write are the ones a
  // later pass reads: the extra clean chunk's; a noisy chunk's rows are always written again
  // by its own clean pass before any pass reads them (docs/schedule.md, "KV cache writes").
  // The windowed cache stores only these (the engine's KvWriteFilter), and max_cached_chunks
  // counts only these. Empty without an extra clean chunk.
  int stored_chunk_begin() const { return extra_clean_chunk ? slice_point : 0; }
  int stored_chunk_end() const { return extra_clean_chunk ? slice_point + 1 : 0; }
};

// The v2v prefix-feature pass (§2.8.3), run before step 0 when chunk_offset ≥ 1.
struct PrefixPass {
  int chunks = 0;                   // chunks [0, chunks), all prefix, at t = clean_t
  std::vector<int> kv_begin;        // per chunk, in chunks
  std::vector<int> kv_end;
};

// The order of the forwards (EngineOptions::schedule).
enum class Schedule {
  kReference,    // the reference's: every step runs all window chunks together
  kStreamFirst,  // the first emitted chunk runs all its steps alone first, then the rest
};

// "reference" / "stream_first", and back; a bad value is InvalidArgument naming `flag` and
// the allowed values.
const char* ScheduleName(Schedule schedule);
absl::StatusOr<Schedule> ParseSchedule(const std::string& flag, const std::string& value);

// How the stream-first schedule gets the K/V that later chunks read from the lead chunk at
// its noisy steps.
enum class LeadKv {
  kRecord,     // keep it from phase 1 (memory: StreamFirstRecordBytes)
  kRecompute,  // re-run the lead chunk in those passes, output dropped (~3/4 of its work again)
};

struct StagePlan {
  PlanOptions options;
  Schedule schedule = Schedule::kReference;
  LeadKv lead_kv = LeadKv::kRecord;  // stream-first only
  // Stream-first: reference steps whose lead-chunk K/V is recorded (all held at once when
  // phase 2 starts), per cache-writing or text pass, and steps where it is recomputed
  // (lead_kv kRecompute: every step read later; kRecord with a step limit: those past it).
  int lead_kv_steps = 0;
  int lead_recompute_steps = 0;
  int chunk_offset = 0;     // whole prefix chunks (P / chunk_width)
  int steps_per_stage = 0;  // d = num_steps / window_size
  int num_stages = 0;       // S = chunk_num + window_size − 1 − chunk_offset
  bool has_prefix_pass = false;
  PrefixPass prefix_pass;
  std::vector<PlannedStep> steps;  // S · d steps
  // Largest number of chunks the windowed cache holds at once: clean chunks (prefix pass,
  // extra clean pass) at or above keep_cache_from (for memory estimates).
  int max_cached_chunks = 0;

  int num_forward_steps() const { return static_cast<int>(steps.size()); }
};

// Validates `options` (errors name the field and the allowed range: num_steps must be a
// multiple of window_size and of the kv-range list length, the schedule must have
// num_steps + 1 entries, the prefix must leave at least one frame to generate, ...) and
// builds the plan.
absl::StatusOr<StagePlan> PlanStages(const PlanOptions& options);

// The stream-first schedule's default budget for recording the lead chunk's K/V (EngineOptions,
// ModelRunnerOptions and every flag that sets it): 0, recompute it. Memory stays bounded
// whatever the model, step count and cfg (recording everything is 540 MiB on config M and
// 23.7 GiB per rank for the 24B at 720p, 64 steps, on 8 ranks) for +3 x steps / window
// chunk-forwards per video (+14 % on config M); a budget records what fits (docs/schedule.md).
inline constexpr int64_t kDefaultLeadKvBudgetBytes = 0;
inline constexpr int64_t kDefaultLeadKvBudgetMb = kDefaultLeadKvBudgetBytes >> 20;

// A flag's lead K/V budget in MiB (`value`: an integer, -1 = no limit, 0 .. 2^30) as bytes;
// errors name `flag` and the allowed range.
absl::StatusOr<int64_t> ParseLeadKvBudgetMb(const std::string& flag, const std::string& value);

// The stream-first order of `reference` (a PlanStages() plan), same outputs (spec pipeline.md
// §2, docs/schedule.md). Phase 1: the lead chunk (chunk_offset, the first one emitted) runs its
// num_steps steps alone, in the reference's passes but with only its own chunk in x (it
// attends only to itself and the clean prefix), and is emitted at the end of it. Phase 2: the
// reference's steps in order without the lead chunk while it is still noisy (slice_point
// moved past it; its K/V served from the recording, or recomputed), the reference's steps
// unchanged from the lead chunk's extra clean pass on. Steps left empty are skipped.
// keep_cache_from and max_cached_chunks are recomputed for this order. A plan with one
// generated chunk or window 1 comes back with the reference's forwards.
// `max_record_steps` >= 0 records only the first that many of the steps read later and
// recomputes the rest (memory: that many steps' K/V; 0 recomputes all: lead_kv kRecompute);
// -1 records all (kRecord).
absl::StatusOr<StagePlan> StreamFirstPlan(const StagePlan& reference, int max_record_steps = -1);

// Bytes of recorded lead-chunk K/V held at once (the start of phase 2) for `plan` (0 for the
// reference order or recompute): lead_kv_steps x passes (2 with cfg_number 3: the text pass
// reads its own K/V) x layers x tokens_per_chunk x groups x 2 x head_dim x element bytes.
int64_t StreamFirstRecordBytes(const StagePlan& plan, int cfg_number, int num_layers, int64_t tokens_per_chunk,
                               int kv_groups, int head_dim, int element_bytes);

// Latent chunks of a request (§1.5): ceil((num_frames / temporal_downsample + P) / chunk_width)
// (not a job's chunk count: jobspec/job_spec.h owns that).
int LatentChunkCount(int num_frames, int temporal_downsample_factor, int prefix_frames, int chunk_width);

// The smallest num_steps the planner accepts and every valid num_steps' divisor:
// lcm(window_size, the number of noise2clean kv ranges, if any).
int NumStepsMultiple(int window_size, int kv_range_count);

// One line per step ("s=3 stage=1/0 sp=0 [c0 t=.. kv=[0,1)] ... emit c0"), for debugging.
std::string DescribePlan(const StagePlan& plan);

}  // namespace magi

#endif  // MAGI_WORKER_ENGINE_STAGE_PLAN_H_
