// JobManager: the job state machine of magi-server. It owns the job store, the scheduler,
// the registry of connected worker groups (GroupRegistry) and the event streams to clients
// (JobFeed), and moves every job through its life:
//
//   Submit -> persisted (QUEUED) -> assigned to a group (RUNNING) -> chunks stored and
//   published to watchers -> SUCCEEDED | FAILED | CANCELLED.
//
// A group whose stream breaks (or that misses heartbeats) is forgotten and its jobs are
// re-queued at the front of their priority; the next assignment carries start_chunk, so
// the job resumes from its last stored chunk. A job that has had max_attempts attempts
// is FAILED with the last group's error instead, so it cannot starve later jobs. On start, jobs found QUEUED or RUNNING in the
// store are queued again the same way.
//
// Every state transition is written to the store before anyone hears of it (the worker of
// an assignment, the watchers of a finished job). A store error on a transition fails the
// job visibly (FAILED naming the write) or the RPC, and is counted in
// magi_store_errors_total; a finished job whose final record could not be written is still
// served from memory and its write retried by the ticker.
//
// The gRPC services are thin adapters over this class: they pass requests in and hand it
// JobSubscriber / WorkerGroupLink objects through which it pushes events and messages.
//
// Thread safety: every public method is thread-safe. Two locks: transitions (and the store
// writes that make them durable) are serialised by one; the in-memory state (jobs, queue,
// groups) is guarded by another that is never held across disk I/O, so reads (GetJob,
// Watch, heartbeats) never wait for a disk. Callbacks into JobSubscriber and
// WorkerGroupLink are made with a lock held, so they must only queue work, never block or
// call back into the manager.
#ifndef MAGI_SERVER_JOB_MANAGER_H_
#define MAGI_SERVER_JOB_MANAGER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "magi/internal/v1/worker_pool.pb.h"
#include "magi/v1/video_generation.pb.h"
#include "server/group_registry.h"
#include "server/job_feed.h"
#include "server/job_store.h"
#include "server/model_catalog.h"
#include "server/tenant_rate_limiter.h"
#include "server/request_validator.h"
#include "server/scheduler.h"

namespace magi {

class ServerMetrics;

// JobSubscriber (server/job_feed.h) and WorkerGroupLink (server/group_registry.h) are the
// manager's two callback interfaces.

struct JobManagerOptions {
  std::string state_dir;
  size_t max_queue = 256;            // admission control: queued jobs at most
  int retention_jobs = 1000;         // finished jobs kept (oldest deleted first)
  double retention_hours = 0;        // also delete finished jobs older than this; 0 = never
  double worker_timeout_seconds = 15;  // a group silent this long is considered gone
  // A job whose group is lost this many times (attempts made) is FAILED with the last
  // group's error instead of being re-queued again.
  int max_attempts = 3;
  // Queued (not yet running) jobs one tenant may have at once; 0 = no per-tenant limit (the
  // queue's max_queue still applies).
  size_t tenant_max_queued = 0;
  // Jobs one tenant may submit per minute (a bucket of this many, refilled continuously);
  // 0 = no rate limit. Idempotent retries of an existing job do not count.
  int tenant_submits_per_minute = 0;
  int heartbeat_interval_ms = 1000;  // what groups are told to use
  std::string default_model = "tiny";
  RequestLimits limits;
  JobFeedOptions feed;  // per-stream window and watcher caps
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
  // Every call names the caller's tenant (kAnonymousTenant without client tokens): a job
  // belongs to the tenant that submitted it, and for any other tenant its id is NotFound
  // with the same message as an unknown id (no existence leak).
  //
  // Validates and persists a job of `tenant` (or returns the existing one for a known
  // idempotency key of that tenant and the same request). InvalidArgument (field named),
  // AlreadyExists (the key was used for a different request; names the key),
  // ResourceExhausted (queue full, the tenant has tenant_max_queued jobs queued, or it
  // submitted faster than tenant_submits_per_minute; names the limit), Unavailable (draining), DeadlineExceeded (deadline already passed).
  absl::StatusOr<::magi::v1::Job> Submit(const std::string& tenant, const ::magi::v1::GenerateRequest& request);
  // Attaches `subscriber` to a job: an accepted event first if `accepted_first`, then the
  // stored chunks with index >= from_chunk (the first one carries the init segment), then
  // live events; a finished job's stream ends after its final event. NotFound, or
  // InvalidArgument for a negative from_chunk.
  absl::Status Watch(const std::string& tenant, const std::string& job_id, int from_chunk,
                     std::shared_ptr<JobSubscriber> subscriber, bool accepted_first);
  // Detaches a subscriber (no more calls on it after this returns). Idempotent.
  void Unwatch(const JobSubscriber* subscriber);
  absl::StatusOr<::magi::v1::Job> Cancel(const std::string& tenant, const std::string& job_id);
  // A live prompt change (magi.v1 UpdatePrompt, the realtime stream's prompt.update): the
  // job uses `text` from its next chunk that has not started denoising. `done` is called
  // once, on some thread, with none of the manager's locks held: at once for a queued job
  // (from its next chunk to make), a bad text (InvalidArgument naming "text"), an ended job
  // (FailedPrecondition) or an unknown id (NotFound); for a running job when its group
  // answers (from_chunk; FailedPrecondition when every chunk had started), when the job is
  // re-queued first (from its next chunk to make), ends first (FailedPrecondition), or a later
  // change replaces this one before a chunk starts (Aborted). Every change used is recorded
  // in the job's request.prompts (persisted): a resumed job replays it.
  struct PromptUpdateResult {
    int from_chunk = 0;
    ::magi::v1::Job job;
  };
  using PromptUpdateDone = std::function<void(absl::StatusOr<PromptUpdateResult>)>;
  void UpdatePrompt(const std::string& tenant, const std::string& job_id, const std::string& text,
                    PromptUpdateDone done);
  // Deletes a job's record, chunks and video (the HTTP API's DELETE). An unfinished job is
  // cancelled first; a final record still waiting to be written goes with it. NotFound for an
  // unknown id; a store error is returned and counted.
  absl::Status DeleteJob(const std::string& tenant, const std::string& job_id);
  absl::StatusOr<::magi::v1::Job> GetJob(const std::string& tenant, const std::string& job_id);
  // The tenant's jobs only.
  absl::StatusOr<::magi::v1::ListJobsResponse> ListJobs(const std::string& tenant,
                                                        const ::magi::v1::ListJobsRequest& request);
  // Path of the final MP4; FailedPrecondition unless the job succeeded.
  absl::StatusOr<std::string> FinalVideoPath(const std::string& tenant, const std::string& job_id);

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
  // Bytes of events handed to client streams and not yet written by them (bounded by the
  // feed's window per stream), and the number of attached streams.
  int64_t feed_bytes_held() const { return feed_->bytes_held(); }
  int feed_watchers() const { return feed_->watchers(); }
  ModelCatalog& catalog() { return catalog_; }
  JobStore& store() { return *store_; }

 private:
  struct ActiveJob {
    JobRecord rec;
    std::string group;  // connection key while running
    int frames_done = 0;
    int64_t queued_since_ms = 0;
    int64_t assigned_ms = 0;
    bool first_chunk_seen = false;
    // Attempts a draining group handed back (JobDone.handed_back): not counted against
    // --max_attempts. In memory only: after a server restart they count again (stricter).
    int handed_back = 0;
    // Live prompt changes sent to the group and not answered yet (oldest first).
    struct PendingPrompt {
      int64_t update_id = 0;
      std::string text;
      PromptUpdateDone done;
    };
    std::vector<PendingPrompt> pending_prompts;
    int64_t next_update_id = 1;
  };
  // One job popped from the queue for a group, already RUNNING in memory.
  struct Assignment {
    std::string job_id;
    std::string group;
    absl::StatusOr<JobSpec> spec;
    JobRecord rec;  // what to persist before the group hears of it
  };

  JobManager(const JobManagerOptions& options, ServerMetrics* metrics);
  absl::Status Recover();
  // OK when job `job_id` exists and belongs to `tenant`; otherwise NotFound(job_id) (or the
  // store's error). Takes mu_ briefly; call without it.
  absl::Status CheckOwner(const std::string& tenant, const std::string& job_id);
  void TickLoop();
  void Tick();

  // --- transitions: called with transition_mu_ held and mu_ not held ---
  // Assigns queued jobs to groups with free slots (persisting each assignment first).
  void Dispatch();
  // Ends a queued or running job: persists the final record, tells the watchers, forgets it.
  // Returns the final record (nullopt if the job was not active).
  std::optional<JobRecord> Finish(const std::string& job_id, ::magi::v1::JobState state,
                                  const absl::Status& status);
  // Forgets a group (closing its link if asked) and re-queues its running jobs.
  void DropGroup(const std::string& key, const absl::Status& why, bool close_link);
  // Puts a running job back in the queue at its last stored chunk (the group is already
  // cleared from it); the caller persists the returned record.
  JobRecord RequeueLocked(ActiveJob& job, const std::string& why);
  // Persists re-queued records (a refused write fails the job) and tells their watchers.
  void PersistRequeued(const std::vector<JobRecord>& requeued, const std::string& why);
  void HandleChunk(const std::string& key, const ::magi::internal::v1::ChunkReady& chunk);
  void HandleDone(const std::string& key, const ::magi::internal::v1::JobDone& done);
  void HandlePromptApplied(const std::string& key, const ::magi::internal::v1::PromptApplied& applied);
  // Calls the prompt-update answers queued under mu_ (AnswerPromptsLocked); call without mu_.
  void FlushPromptAnswers();
  // Deletes expired finished jobs that nobody is watching.
  void RunRetention();
  // Writes `rec`; a failure is logged and counted under `op`.
  absl::Status Persist(const JobRecord& rec, const char* op);
  void CountStoreError(const char* op, const std::string& what, const absl::Status& s);

  // --- with mu_ held ---
  std::optional<Assignment> NextAssignmentLocked();
  ActiveJob* JobForLocked(const std::string& key, const std::string& job_id, int attempt);
  // A running or finished-but-unwritten job's record, or null.
  const JobRecord* MemoryRecordLocked(const std::string& job_id) const;
  ::magi::v1::Job JobViewLocked(const JobRecord& rec) const;
  ::magi::v1::GenerateEvent ProgressEventLocked(const ActiveJob& job) const;
  void EnqueueLocked(const JobRecord& rec, bool bypass_capacity);
  void UpdateGaugesLocked();
  int RunningLocked() const;
  // Answers the job's pending prompt changes with update_id <= `up_to`: `up_to` itself with
  // `result`, older ones as replaced by it. The answers run at the next FlushPromptAnswers.
  void AnswerPromptsLocked(ActiveJob& job, int64_t up_to, const absl::StatusOr<PromptUpdateResult>& result);
  // The `model` label of a job's metrics: its model, or the default model when it named none.
  std::string ModelLabel(const JobRecord& rec) const;
  std::string NewJobId();

  const JobManagerOptions options_;
  ServerMetrics* metrics_;
  ModelCatalog catalog_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<JobFeed> feed_;

  // Serialises state transitions with their store writes; taken before mu_, never under it.
  std::mutex transition_mu_;
  mutable std::mutex mu_;  // the in-memory state below; never held across disk I/O
  std::condition_variable idle_cv_;
  Scheduler scheduler_;
  TenantRateLimiter rate_;  // guarded by mu_
  GroupRegistry registry_{&catalog_};
  std::map<std::string, ActiveJob> active_;  // queued and running jobs
  std::map<std::string, JobRecord> unwritten_;  // finished; the store refused the final record
  std::vector<std::function<void()>> prompt_answers_;  // queued by AnswerPromptsLocked
  int64_t last_retention_ms_ = 0;
  std::atomic<bool> draining_{false};

  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool stop_ = false;
  std::thread tick_thread_;
};

}  // namespace magi

#endif  // MAGI_SERVER_JOB_MANAGER_H_
