// JobManager: the heart of magi-server. It owns the job store, the scheduler and the
// registry of connected worker groups, and moves every job through its life:
//
//   Submit -> persisted (QUEUED) -> assigned to a group (RUNNING) -> chunks stored and
//   streamed to watchers -> SUCCEEDED | FAILED | CANCELLED.
//
// A group whose stream breaks (or that misses heartbeats) is forgotten and its jobs are
// re-queued at the front of their priority; the next assignment carries the chunks already
// stored (start_chunk, done_video), so the job resumes from its last finished chunk. On
// start, jobs found QUEUED or RUNNING in the store are queued again the same way.
//
// The gRPC services are thin adapters over this class: they pass requests in and hand it
// JobSubscriber / WorkerGroupLink objects through which it pushes events and messages.
//
// Thread safety: every public method is thread-safe (one mutex). Callbacks into
// JobSubscriber and WorkerGroupLink are made with that mutex held, so they must only queue
// work, never block or call back into the manager.
#ifndef MAGI_SERVER_JOB_MANAGER_H_
#define MAGI_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "magi/internal/v1/worker_pool.pb.h"
#include "magi/v1/video_generation.pb.h"
#include "server/job_store.h"
#include "server/model_catalog.h"
#include "server/request_validator.h"
#include "server/scheduler.h"

namespace magi {

class ServerMetrics;

// Receives the events of one job for one client stream.
class JobSubscriber {
 public:
  virtual ~JobSubscriber() = default;
  // Queues one event (called with the manager's lock held: must not block).
  virtual void OnEvent(const ::magi::v1::GenerateEvent& event) = 0;
  // The last call: end the stream with `status` (OK after a completed event).
  virtual void OnClose(const absl::Status& status) = 0;
};

// The server's end of one worker group's stream.
class WorkerGroupLink {
 public:
  virtual ~WorkerGroupLink() = default;
  // Queues one message to the group (must not block).
  virtual void Send(const ::magi::internal::v1::ServerMessage& message) = 0;
  // Ends the stream with `status`; the manager has already forgotten the group.
  virtual void Close(const absl::Status& status) = 0;
};

struct JobManagerOptions {
  std::string state_dir;
  size_t max_queue = 256;            // admission control: queued jobs at most
  int retention_jobs = 1000;         // finished jobs kept (oldest deleted first)
  double retention_hours = 0;        // also delete finished jobs older than this; 0 = never
  double worker_timeout_seconds = 15;  // a group silent this long is considered gone
  int heartbeat_interval_ms = 1000;  // what groups are told to use
  std::string default_model = "tiny";
  RequestLimits limits;
};

class JobManager {
 public:
  // Opens the store under options.state_dir and re-queues the unfinished jobs it holds.
  // `metrics` may be null; it must outlive the manager.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(const JobManagerOptions& options,
                                                            ServerMetrics* metrics);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // --- public API ---
  // Validates and persists a job (or returns the existing one for a known idempotency
  // key). InvalidArgument (field named), ResourceExhausted (queue full), Unavailable
  // (draining), DeadlineExceeded (deadline already passed).
  absl::StatusOr<::magi::v1::Job> Submit(const ::magi::v1::GenerateRequest& request);
  // Attaches `subscriber` to a job: an accepted event first if `accepted_first`, then the
  // stored chunks with index >= from_chunk (the first one carries the init segment), then
  // live events; a finished job's stream ends after its final event. NotFound, or
  // InvalidArgument for a negative from_chunk.
  absl::Status Watch(const std::string& job_id, int from_chunk,
                     std::shared_ptr<JobSubscriber> subscriber, bool accepted_first);
  // Detaches a subscriber (no more calls on it after this returns). Idempotent.
  void Unwatch(const JobSubscriber* subscriber);
  absl::StatusOr<::magi::v1::Job> Cancel(const std::string& job_id);
  absl::StatusOr<::magi::v1::Job> GetJob(const std::string& job_id);
  absl::StatusOr<::magi::v1::ListJobsResponse> ListJobs(const ::magi::v1::ListJobsRequest& request);
  // Path of the final MP4; FailedPrecondition unless the job succeeded.
  absl::StatusOr<std::string> FinalVideoPath(const std::string& job_id);

  // --- worker groups ---
  // Registers a group; sends it Registered and possibly assignments through `link`.
  // Returns the connection key used for the group's later messages. InvalidArgument for a
  // registration without models or slots.
  absl::StatusOr<std::string> RegisterGroup(const ::magi::internal::v1::Register& registration,
                                            std::shared_ptr<WorkerGroupLink> link);
  void OnWorkerMessage(const std::string& group_key, const ::magi::internal::v1::WorkerMessage& message);
  // The group's stream ended: its running jobs are re-queued. Idempotent.
  void OnGroupLost(const std::string& group_key, const absl::Status& why);

  // --- operations ---
  // Stops admission (Submit -> Unavailable) and assignment; running jobs go on.
  void StartDraining();
  bool draining() const { return draining_.load(); }
  int running_jobs() const;
  int queued_jobs() const;
  int groups_up() const;
  // Blocks until no job is running or `timeout` passed; true if none is running.
  bool WaitForNoRunningJobs(absl::Duration timeout);
  // Ends every client stream and worker link with `status` (shutdown).
  void CloseAllStreams(const absl::Status& status);
  ModelCatalog& catalog() { return catalog_; }
  JobStore& store() { return *store_; }

 private:
  struct Watcher {
    std::shared_ptr<JobSubscriber> subscriber;
    int from_chunk = 0;
    bool init_sent = false;
  };
  struct ActiveJob {
    JobRecord rec;
    std::string group;  // connection key while running
    int frames_done = 0;
    int64_t queued_since_ms = 0;
    int64_t assigned_ms = 0;
    bool first_chunk_seen = false;
    std::vector<Watcher> watchers;
  };
  struct Group {
    std::string key;
    ::magi::internal::v1::Register info;
    std::shared_ptr<WorkerGroupLink> link;
    std::set<std::string> busy;  // job ids occupying a slot (incl. cancelled, until done)
    int64_t last_seen_ms = 0;
  };

  JobManager(const JobManagerOptions& options, ServerMetrics* metrics);
  absl::Status Recover();
  void TickLoop();
  void Tick();

  void DispatchLocked();
  // Sends `job` to `group` with the JobSpec built from the group's declaration of its model.
  void AssignLocked(Group& group, ActiveJob& job, JobSpec spec);
  void RequeueLocked(ActiveJob& job);
  void FinishLocked(const std::string& job_id, ::magi::v1::JobState state, const absl::Status& status);
  void DropGroupLocked(const std::string& key, const absl::Status& why, bool close_link);
  void BroadcastLocked(ActiveJob& job, const ::magi::v1::GenerateEvent& event);
  void SendChunkLocked(Watcher& w, const std::string& job_id, const ::magi::v1::VideoChunk& chunk);
  ::magi::v1::Job JobViewLocked(const JobRecord& rec) const;
  ::magi::v1::GenerateEvent ProgressEventLocked(const ActiveJob& job) const;
  void UpdateGaugesLocked();
  void RetentionLocked();
  std::string NewJobId();

  const JobManagerOptions options_;
  ServerMetrics* metrics_;
  ModelCatalog catalog_;
  std::unique_ptr<JobStore> store_;

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  Scheduler scheduler_;
  std::map<std::string, ActiveJob> active_;  // queued and running jobs
  std::map<std::string, Group> groups_;
  int64_t next_group_serial_ = 0;
  int64_t last_retention_ms_ = 0;
  std::atomic<bool> draining_{false};

  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool stop_ = false;
  std::thread tick_thread_;
};

}  // namespace magi

#endif  // MAGI_SERVER_JOB_MANAGER_H_
