#include "worker/main/runner_factory.h"

#include "absl/strings/str_cat.h"
#include "worker/main/synthetic_frame_runner.h"

namespace magi {

absl::StatusOr<std::unique_ptr<JobRunner>> CreateJobRunner(const RunnerOptions& options) {
  if (options.runner == "synthetic") {
    return std::unique_ptr<JobRunner>(new SyntheticFrameRunner(options.synthetic_step_delay));
  }
  if (options.runner == "model") {
    // The seam for MAGI-1: a ModelJobRunner (model_job_runner.cc) will load the config and
    // weights from --model-dir (the server generates the default "tiny" model there), run
    // T5 -> ArEngine -> VAE decode per emitted chunk, and replay earlier chunks from
    // RunnerJob::done_video on resume.
    return absl::UnimplementedError(
        "--runner=model: the MAGI-1 runner is not built into this magi-worker yet (it needs "
        "worker/engine, worker/vae and worker/t5); use --runner=synthetic for tests");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--runner: '", options.runner, "' is unknown; allowed: synthetic, model"));
}

}  // namespace magi
