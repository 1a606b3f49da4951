// CreateJobRunner: picks the JobRunner a magi-worker serves with (--runner).
//   "synthetic": SyntheticFrameRunner, the test/dev runner (test patterns, not the model).
//   "model":     MAGI-1 (T5 -> AR engine -> VAE decode): ModelJobRunner on --model_dir; with
//                create_tiny_model the embedded "tiny" set is generated there first if
//                missing (WriteTinyModelSet).
//
// Thread safety: reentrant.
#ifndef MAGI_WORKER_RUNNER_RUNNER_FACTORY_H_
#define MAGI_WORKER_RUNNER_RUNNER_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/runner/job_runner.h"
#include "worker/runner/model_job_runner.h"

namespace magi {

struct RunnerOptions {
  std::string runner = "synthetic";
  absl::Duration synthetic_step_delay = absl::Milliseconds(5);
  int synthetic_hang_after_steps = 0;  // "synthetic": test hook (SyntheticFrameRunner)
  std::string model_dir;  // "model": folder with config.json and weights
  bool create_tiny_model = false;  // "model": generate the tiny set in model_dir if missing
  int max_concurrent_jobs = 1;     // jobs run at once, both runners (it sets model.max_concurrent_jobs)
  // "model": the rest of what the model runner takes, as it takes it: the served name
  // (--model_name), where this rank computes (cuda:LOCAL_RANK on a GPU) and, in a rank group,
  // this rank's layout, its communicators (not owned) and whether it follows.
  ModelRunnerOptions model;
};

// InvalidArgument naming --runner for an unknown name; "model": the loader's or the tiny
// set generator's error (naming the file or field).
absl::StatusOr<std::unique_ptr<JobRunner>> CreateJobRunner(const RunnerOptions& options);

}  // namespace magi

#endif  // MAGI_WORKER_RUNNER_RUNNER_FACTORY_H_
