#include "worker/runner/runner_factory.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/runner/model_job_runner.h"
#include "worker/runner/synthetic_frame_runner.h"
#include "worker/runner/tiny_model.h"

namespace magi {

absl::StatusOr<std::unique_ptr<JobRunner>> CreateJobRunner(const RunnerOptions& options) {
  if (options.runner == "synthetic") {
    return std::unique_ptr<JobRunner>(new SyntheticFrameRunner(
        options.synthetic_step_delay, options.synthetic_hang_after_steps, options.max_concurrent_jobs));
  }
  if (options.runner == "model") {
    if (options.model_dir.empty()) {
      return absl::InvalidArgumentError("--model_dir: required with --runner=model (a MAGI-1 model folder)");
    }
    if (options.create_tiny_model) {
      MAGI_RETURN_IF_ERROR(WriteTinyModelSet(options.model_dir));
    }
    ModelRunnerOptions mo = options.model;
    mo.max_concurrent_jobs = options.max_concurrent_jobs;
    MAGI_ASSIGN_OR_RETURN(auto runner, ModelJobRunner::Load(options.model_dir, mo));
    // The conditioning every job of this model gets (config.json serving_config).
    std::fprintf(stderr, "magi-worker: model '%s' from %s: %s; %s\n", runner->model_name().c_str(),
                 options.model_dir.c_str(), runner->conditioning().c_str(), runner->placement().c_str());
    return std::unique_ptr<JobRunner>(std::move(runner));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--runner: '", options.runner, "' is unknown; allowed: synthetic, model"));
}

}  // namespace magi
