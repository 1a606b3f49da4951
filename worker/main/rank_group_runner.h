// A worker group of several rank processes (TP x CP): every rank runs the same job through
// its own ModelJobRunner (its DiT shard talks to the others inside each forward), SPMD.
// Rank 0 is the leader: it alone talks to magi-server and encodes chunks; before running a
// job it broadcasts the job to the followers, and every cancellation check is agreed on by
// all ranks (an all-reduce of the leader's answer), so all ranks stop at the same step. That
// agreement also carries "failed": a rank whose job fails says so at the next one (its job's
// end), every rank stops there, and the leader's Run() returns that rank's error, code kept,
// as "worker group: rank N failed: <its error>". Followers neither encode nor decode
// (ModelRunnerOptions::follower).
#ifndef MAGI_WORKER_MAIN_RANK_GROUP_RUNNER_H_
#define MAGI_WORKER_MAIN_RANK_GROUP_RUNNER_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "worker/runner/job_runner.h"

namespace magi {

class Communicator;

// The leader's runner: wraps the leader's own model runner. Runs up to one job per channel
// at once (Run from several threads: each job takes a free slot). The channels (slot 0's is
// the world group) must outlive it.
class GroupLeaderRunner final : public JobRunner {
 public:
  GroupLeaderRunner(std::unique_ptr<JobRunner> inner, Communicator& world);
  GroupLeaderRunner(std::unique_ptr<JobRunner> inner, std::vector<Communicator*> channels);
  ~GroupLeaderRunner() override;
  std::string name() const override { return inner_->name(); }
  std::vector<::magi::internal::v1::ModelInfo> Models() const override { return inner_->Models(); }
  absl::Status Run(const RunnerJob& job, FrameSink& sink) override;
  int max_concurrent_jobs() const override { return static_cast<int>(channels_.size()); }
  // Tells the followers to exit (they also exit when the leader's process disappears).
  absl::Status StopFollowers();

 private:
  std::unique_ptr<JobRunner> inner_;
  const std::vector<Communicator*> channels_;
  std::mutex mu_;
  std::vector<bool> busy_;  // per slot
};

// A follower rank's loop: waits for the next job from the leader, runs it (frames are
// discarded; the leader encodes), and repeats until the leader says stop. Returns the first
// error (a failed collective means the group is gone).
absl::Status RunGroupFollower(JobRunner& runner, Communicator& world);
// The same for every slot at once (one loop per channel, on threads of its own); returns when
// every loop has ended, with the first error.
absl::Status RunGroupFollower(JobRunner& runner, const std::vector<Communicator*>& channels);

}  // namespace magi

#endif  // MAGI_WORKER_MAIN_RANK_GROUP_RUNNER_H_
