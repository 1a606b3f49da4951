// SyntheticFrameRunner: a TEST / DEVELOPMENT JobRunner that draws deterministic test-pattern
// frames (moving gradients and a square, varied by seed and by each chunk's prompt) instead
// of running MAGI-1. It lets the server, scheduler, protocol, CLI and end-to-end tests run
// real jobs through the real fMP4 encoder without model weights. It is not the model, and
// it serves a model of its own, "synthetic" (jobspec/builtin_models.h: SyntheticModelInfo),
// never "tiny": a server whose workers run it is started with --default_model=synthetic.
//
// It simulates `num_steps` denoising steps per chunk, sleeping `step_delay` per step, so
// tests can observe progress, cancel mid-job and kill a worker mid-job. Frames depend only
// on (seed, frame index, size, prompt of the chunk), so a resumed job reproduces exactly
// the frames an uninterrupted one would have made.
//
// Thread safety: Run() may run on up to `max_jobs` threads at once (it keeps no state of its
// own between calls). Not copyable.
#ifndef MAGI_WORKER_RUNNER_SYNTHETIC_FRAME_RUNNER_H_
#define MAGI_WORKER_RUNNER_SYNTHETIC_FRAME_RUNNER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "worker/runner/job_runner.h"

namespace magi {

class SyntheticFrameRunner final : public JobRunner {
 public:
  // `hang_after_steps` > 0 (tests of the stall watchdog only): the job blocks for good after
  // that many steps, ignoring cancellation, as a wedged collective does.
  explicit SyntheticFrameRunner(absl::Duration step_delay = absl::Milliseconds(5), int hang_after_steps = 0,
                                int max_jobs = 1)
      : step_delay_(step_delay), hang_after_steps_(hang_after_steps), max_jobs_(max_jobs) {}

  std::string name() const override { return "synthetic"; }
  std::vector<::magi::internal::v1::ModelInfo> Models() const override;
  absl::Status Run(const RunnerJob& job, FrameSink& sink) override;
  int max_concurrent_jobs() const override { return max_jobs_; }

  // Frame `index` of a job (exposed for tests: the reference the output is compared to).
  static RgbFrame MakeFrame(const ::magi::v1::GenerateRequest& request, int frame_index,
                            uint64_t prompt_hash);
  // Job chunk `chunk` with the prompts of `request` (the job's, with live updates applied).
  static std::vector<RgbFrame> MakeChunk(const RunnerJob& job, const ::magi::v1::GenerateRequest& request, int chunk);

 private:
  absl::Duration step_delay_;
  int hang_after_steps_ = 0;
  int max_jobs_ = 1;
};

}  // namespace magi

#endif  // MAGI_WORKER_RUNNER_SYNTHETIC_FRAME_RUNNER_H_
