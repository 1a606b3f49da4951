// JobRunner: what a worker group runs for one assigned job -- the seam between the worker
// process (protocol, encoding, streaming: worker/main) and whatever makes the frames
// (worker/runner).
//
// Two implementations are meant to exist:
//  * SyntheticFrameRunner (synthetic_frame_runner.h): deterministic test pattern frames, a
//    TEST / DEVELOPMENT runner for the server, scheduler, protocol and end-to-end tests.
//    It is not the model and never claims to be.
//  * ModelJobRunner (model_job_runner.h, "model"): MAGI-1, T5 -> AR engine -> VAE decode
//    per chunk; the default of `magi-server --local-workers N`, on the embedded "tiny"
//    model set (tiny_model.h).
//
// A runner produces RGB frames per chunk; the caller (JobExecutor) encodes them into
// fMP4 fragments and streams them, so runners know nothing of gRPC or containers.
//
// Thread safety: a runner runs up to max_concurrent_jobs() jobs at a time, each Run() on its
// own thread with its own sink (1 by default: one at a time). FrameSink calls happen on the thread that
// called Run(), except OnPrefixChunk / OnChunk, which a runner may make from one other thread
// of its own (the model runner's chunk delivery, overlapping decode with compute): those two
// never run concurrently with each other and come in order, but may run concurrently with
// OnProgress, Cancelled, TakeLivePrompt and OnLivePromptApplied, so a sink guards what
// they share. Every call has returned when Run() returns.
#ifndef MAGI_WORKER_RUNNER_JOB_RUNNER_H_
#define MAGI_WORKER_RUNNER_JOB_RUNNER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "jobspec/job_spec.h"
#include "magi/internal/v1/worker_pool.pb.h"
#include "magi/v1/video_generation.pb.h"
#include "worker/media/rgb_frame.h"

namespace magi {

struct RunnerJob {
  std::string job_id;
  JobSpec spec;         // built at the edge (jobspec/job_spec.h): the request with defaults, geometry
  int start_chunk = 0;  // chunks < start_chunk were made by an earlier attempt
  // The job slot it runs in on every rank of a rank group (worker/main/rank_group_runner.h),
  // in [0, max_concurrent_jobs); 0 on a single rank.
  int slot = 0;

  const ::magi::v1::GenerateRequest& request() const { return spec.request(); }
  int chunks_total() const { return spec.chunks_total(); }
  int FrameBegin(int chunk) const { return ::magi::FrameBegin(spec, chunk); }
  int FrameEnd(int chunk) const { return ::magi::FrameEnd(spec, chunk); }
};

struct StepProgress {
  int chunk = 0;        // chunk being denoised (the oldest in flight)
  int step = 0;         // steps done
  int total_steps = 0;
  double step_seconds = 0;
  double eta_seconds = 0;
};

// A prompt change the job's client sent while it runs (magi.v1 UpdatePrompt).
struct LivePrompt {
  int64_t update_id = 0;  // the server's, increasing per job
  std::string text;
};

// Receives a runner's output.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // On resume: the frames of each earlier chunk (index < start_chunk), in order, as the
  // runner reconstructs them, so the encoder's timeline continues where it stopped.
  virtual absl::Status OnPrefixChunk(int index, const std::vector<RgbFrame>& frames) = 0;
  // A finished chunk, in order from start_chunk; an error aborts the run with it.
  virtual absl::Status OnChunk(int index, const std::vector<RgbFrame>& frames) = 0;
  virtual void OnProgress(const StepProgress& progress) = 0;
  // Polled between steps; true ends Run() with CancelledError.
  virtual bool Cancelled() const = 0;
  // Live prompts: asked just before job chunk `chunk` (>= the job's start_chunk) starts
  // denoising, once per chunk in order, on every rank of a group at the same point. Returns
  // the newest prompt received since the last call, if any; the runner uses it from `chunk`
  // on and says so with OnLivePromptApplied. An error aborts the run. Default: none.
  virtual absl::StatusOr<std::optional<LivePrompt>> TakeLivePrompt(int chunk) {
    (void)chunk;
    return std::optional<LivePrompt>();
  }
  virtual void OnLivePromptApplied(const LivePrompt& prompt, int chunk) {
    (void)prompt;
    (void)chunk;
  }
};

class JobRunner {
 public:
  virtual ~JobRunner() = default;
  // "synthetic", "model", ...
  virtual std::string name() const = 0;
  // The models it serves, with their limits (sent in Register).
  virtual std::vector<::magi::internal::v1::ModelInfo> Models() const = 0;
  // Makes chunks [job.start_chunk, job.chunks_total): OK, CancelledError, or the error
  // (InvalidArgument for requests it cannot serve, naming the field).
  virtual absl::Status Run(const RunnerJob& job, FrameSink& sink) = 0;
  // Jobs it runs at once (the slots its worker group registers), in [1, kMaxConcurrentJobs].
  virtual int max_concurrent_jobs() const { return 1; }
};

// The most jobs a worker group runs at once (magi-worker --max_jobs_per_group).
inline constexpr int kMaxConcurrentJobs = 16;

}  // namespace magi

#endif  // MAGI_WORKER_RUNNER_JOB_RUNNER_H_
