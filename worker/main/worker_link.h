// WorkerLink: the leader's side of magi.internal.v1.WorkerPool. It dials the server, opens
// the one bidi stream, registers the runner's models and slots (JobRunner::max_concurrent_jobs),
// runs each assignment on its own thread through a JobExecutor (up to that many at once),
// forwards cancellations and prompt updates to the job they name, and sends heartbeats. When
// the stream breaks, the running jobs are cancelled (the server re-queues it) and the link
// reconnects with back-off until Stop(). Every stream carries the worker token
// (base/worker_token.h: `authorization: Bearer <first token of token_file>`); the file is
// read again for every stream, so a rotated token is picked up at the next reconnect.
//
// Thread safety: Run() blocks on the calling thread; Stop() may be called from any thread.
// Does not own the runner.
#ifndef MAGI_WORKER_MAIN_WORKER_LINK_H_
#define MAGI_WORKER_MAIN_WORKER_LINK_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace grpc {
class ClientContext;
class Status;
}

namespace magi {

class JobExecutor;
class JobRunner;
class WorkerHealth;

struct WorkerLinkOptions {
  std::string server = "127.0.0.1:50051";
  std::string group_id = "worker";
  std::string token_file;  // required: the worker token file (--worker_token_file)
  int64_t memory_bytes = 0;
  int world_size = 1;
  bool reconnect = true;  // false: Run() returns when the first stream ends
  absl::Duration max_backoff = absl::Seconds(2);
  // Not owned; may be null. Told when the group is registered with the server (readiness).
  WorkerHealth* health = nullptr;
  // Stall watchdog: a running job whose runner shows no progress (a step, a chunk) for this
  // long is taken as wedged (a hung collective never returns; the heartbeats keep beating
  // on their own thread): the link marks health stalled, calls on_stall, and ends the
  // stream, so the server re-queues the job (from its last finished chunk) on another group.
  // The wedged job thread is abandoned and Run() returns FailedPrecondition "stalled: ..."
  // without reconnecting; the process should exit. Zero: off.
  absl::Duration step_timeout = absl::ZeroDuration();
  std::function<void(const std::string& why)> on_stall;
};

class WorkerLink {
 public:
  WorkerLink(WorkerLinkOptions options, JobRunner* runner);
  ~WorkerLink();
  WorkerLink(const WorkerLink&) = delete;
  WorkerLink& operator=(const WorkerLink&) = delete;

  // Serves until Stop() (or the first stream end without reconnect); returns the last
  // stream's status (UNAUTHENTICATED when the server refused the token), or InvalidArgument
  // at once when no token_file is set.
  absl::Status Run();
  void Stop();
  // Eviction (SIGTERM): takes no more jobs, lets each job in progress finish its current
  // chunk (JobExecutor::HandBackAfterChunk) for at most `grace`, then ends the stream; the
  // server re-queues the jobs from their last finished chunks. Run() then returns. Any thread.
  void Drain(absl::Duration grace);
  // Streams opened and registered so far (tests).
  int sessions() const { return sessions_.load(); }

 private:
  absl::Status RunSession();
  // Logs the server's refusal of our token and returns it as UNAUTHENTICATED.
  absl::Status Refused(const grpc::Status& s) const;

  WorkerLinkOptions options_;
  JobRunner* runner_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sessions_{0};
  std::atomic<bool> stalled_{false};
  std::atomic<bool> draining_{false};
  std::mutex exec_mu_;
  std::vector<JobExecutor*> current_;  // the session's jobs, for Drain
  std::string stall_reason_;  // set once, before stalled_
  std::mutex ctx_mu_;
  grpc::ClientContext* ctx_ = nullptr;
  // The session's graceful end (WritesDone): what was written, JobDone included, reaches
  // the server before the stream ends. Set while a session runs (under ctx_mu_).
  std::function<void()> half_close_;
};

}  // namespace magi

#endif  // MAGI_WORKER_MAIN_WORKER_LINK_H_
