// JobStore: the durable record of every job, in one SQLite database (WAL mode, synchronous
// FULL) plus one folder of files per job under the state directory:
//
//   <state_dir>/magi.db                      jobs and chunk rows
//   <state_dir>/jobs/<job_id>/init.mp4       the fragmented MP4 init segment
//   <state_dir>/jobs/<job_id>/chunk-NNNNN.m4s one fMP4 fragment per finished chunk
//   <state_dir>/jobs/<job_id>/video.mp4      the final MP4 (init + all fragments)
//
// What "accepted" guarantees: Insert() returns only after the job row (with the whole
// request, media bytes included) is committed and synced, so a job the server answered for
// survives a crash or power loss. PutChunk() writes the fragment file (synced, renamed into
// place) before the row that counts it is committed, so a counted chunk always has its
// bytes on disk; a crash in between leaves an orphan file that the next PutChunk overwrites.
//
// Thread safety: all methods are safe to call concurrently (one connection, one mutex).
// Owns the database connection; not copyable.
#ifndef MAGI_SERVER_JOB_STORE_H_
#define MAGI_SERVER_JOB_STORE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "magi/v1/video_generation.pb.h"

struct sqlite3;

namespace magi {

// The tenant of every job when the server runs without --client_tokens_file (and of the
// jobs of databases from before tenants existed).
inline constexpr char kAnonymousTenant[] = "";

struct JobRecord {
  std::string job_id;
  // Who owns the job (server/token_auth.h: the tenant of the client token that submitted
  // it); fixed at Insert. Only this tenant sees the job.
  std::string tenant = kAnonymousTenant;
  int64_t seq = 0;  // assigned by Insert(); submission order
  ::magi::v1::JobState state = ::magi::v1::JOB_STATE_QUEUED;
  ::magi::v1::GenerateRequest request;  // validated, defaults filled, media bytes included
  // Once live prompt changes (UpdatePrompt) have replaced prompts in `request`: the prompts as
  // submitted (only `prompts` set), which an idempotent retry of the submission is compared
  // with. Unset while the request is as submitted.
  std::optional<::magi::v1::GenerateRequest> submitted_prompts;
  int64_t created_ms = 0;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  int chunks_done = 0;
  int chunks_total = 0;
  int attempts = 0;
  int error_code = 0;
  std::string error_message;
  ::magi::v1::JobStats stats;
  int64_t video_bytes = 0;

  bool finished() const {
    return state == ::magi::v1::JOB_STATE_SUCCEEDED || state == ::magi::v1::JOB_STATE_FAILED ||
           state == ::magi::v1::JOB_STATE_CANCELLED;
  }
  // The public view (media bytes not echoed); queue_position is left -1.
  ::magi::v1::Job ToJob() const;
};

struct ChunkRecord {
  int index = 0;
  int frame_begin = 0;
  int frame_end = 0;
  int64_t bytes = 0;
};

struct JobPage {
  std::vector<JobRecord> jobs;
  std::string next_page_token;  // empty on the last page
};

class JobStore {
 public:
  // Opens (creating if needed) the store under `state_dir`. Errors name the path.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& state_dir);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Persists a new job and sets record->seq. AlreadyExists if the job id or the (non-empty)
  // idempotency key is taken (keys are per tenant).
  absl::Status Insert(JobRecord* record);
  // Overwrites the mutable fields (state, times, counters, error, stats) of an existing job.
  absl::Status Update(const JobRecord& record);
  absl::StatusOr<std::optional<JobRecord>> Get(const std::string& job_id);
  // The job `tenant` submitted with idempotency key `key`, if any.
  absl::StatusOr<std::optional<JobRecord>> FindByIdempotencyKey(const std::string& tenant, const std::string& key);
  // Jobs in state QUEUED or RUNNING, in submission order (for restart recovery).
  absl::StatusOr<std::vector<JobRecord>> LoadUnfinished();
  // The jobs of `tenant`, newest first; `state` JOB_STATE_UNSPECIFIED = all. page_token from
  // the previous page. InvalidArgument naming page_token if it is not one of ours.
  absl::StatusOr<JobPage> List(const std::string& tenant, ::magi::v1::JobState state, int page_size,
                               const std::string& page_token);

  // Stores chunk `index` of a job (and the init segment, when non-empty) and sets the
  // job's chunks_done to index + 1, atomically with the chunk row.
  absl::Status PutChunk(const std::string& job_id, const ChunkRecord& chunk,
                        const std::string& init_segment, const std::string& fragment);
  absl::StatusOr<std::vector<ChunkRecord>> Chunks(const std::string& job_id);
  absl::StatusOr<std::string> ReadInitSegment(const std::string& job_id);
  absl::StatusOr<std::string> ReadFragment(const std::string& job_id, int index);
  // init segment + fragments [0, count): the playable MP4 of the first `count` chunks.
  absl::StatusOr<std::string> ReadVideoPrefix(const std::string& job_id, int count);
  // Writes video.mp4 (init + all fragments, synced, renamed into place); returns its size.
  absl::StatusOr<int64_t> WriteFinalVideo(const std::string& job_id, int chunks);
  std::string VideoPath(const std::string& job_id) const;

  // Finished jobs beyond the newest `keep` finished ones, or finished before
  // `finished_before_ms` (0 = no age limit).
  absl::StatusOr<std::vector<std::string>> ExpiredJobs(int keep, int64_t finished_before_ms);
  // Removes a job's rows and files.
  absl::Status Delete(const std::string& job_id);

  const std::string& state_dir() const { return dir_; }

 private:
  explicit JobStore(std::string dir) : dir_(std::move(dir)) {}
  absl::Status Exec(const char* sql);
  // Adds the tenant column to a database from before tenants; per-tenant idempotency index.
  // A database of an older release: adds the columns it lacks (tenant, submitted_prompts).
  absl::Status MigrateTenants();
  std::string JobDir(const std::string& job_id) const;

  std::string dir_;
  int lock_fd_ = -1;  // flock on <state_dir>/LOCK while open: one server per state dir
  std::mutex mu_;
  sqlite3* db_ = nullptr;
};

// Writes `bytes` to `path` through a synced temporary file renamed into place.
absl::Status WriteFileDurably(const std::string& path, const std::string& bytes);
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace magi

#endif  // MAGI_SERVER_JOB_STORE_H_
