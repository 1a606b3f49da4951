// JobFeed: the event streams of jobs to their watchers -- attach, replay of stored chunks,
// fan-out of live events, the final event and close -- with a bounded window per stream.
//
// A watcher holds a cursor (the next chunk it is owed), not a copy of the video: stored
// fragments are read from disk one at a time as its client consumes them, and a live chunk
// is handed over from memory only to watchers that are caught up and have room. A
// flow-controlled subscriber (JobSubscriber::EnableFlowControl) has at most
// `window_bytes` (at least one event) handed over and not yet written; one whose client
// does not read is held there, so the feed's memory is at most
// max_watchers x (window_bytes + one event). Progress events for a watcher that is behind
// are coalesced to the latest, delivered where the original stream had it (before the
// chunks published after it). Disk reads happen on the thread that attached the watcher
// (its first window) or on the feed's own pump thread (afterwards), never under a lock.
//
// Thread safety: all methods are thread-safe (one mutex, never held across disk reads).
// Callbacks into JobSubscriber are made with it held, so they must only queue. The
// JobManager may call the Publish/Finish/Open/Attach methods under its own state lock.
// Owns a pump thread; not copyable.
#ifndef MAGI_SERVER_JOB_FEED_H_
#define MAGI_SERVER_JOB_FEED_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "magi/v1/video_generation.pb.h"
#include "server/job_store.h"

namespace magi {

class ServerMetrics;

// Receives the events of one job for one client stream.
class JobSubscriber {
 public:
  virtual ~JobSubscriber() = default;
  // Queues one event (called with the feed's lock held: must not block).
  virtual void OnEvent(const ::magi::v1::GenerateEvent& event) = 0;
  // The last call: end the stream with `status` (OK after a completed event).
  virtual void OnClose(const absl::Status& status) = 0;
  // Flow control, optional. Called once, before the first OnEvent. A subscriber that returns
  // true promises to call `written` once per event, in order, when that event has been
  // written to its client (it may call it from any thread, even from inside OnEvent); the
  // feed then hands it at most its window of unwritten bytes. The default (false) counts
  // every event as consumed when OnEvent returns: for in-process subscribers.
  virtual bool EnableFlowControl(std::function<void()> written) {
    (void)written;
    return false;
  }
};

struct JobFeedOptions {
  int64_t window_bytes = 1 << 20;   // per flow-controlled watcher (at least one event)
  int max_watchers_per_job = 256;   // further Watch calls: ResourceExhausted
  int max_watchers = 4096;          // over all jobs
};

class JobFeed {
 public:
  // Reads stored chunks through `store` (which must outlive the feed). `metrics` may be null.
  JobFeed(JobStore* store, const JobFeedOptions& options, ServerMetrics* metrics);
  ~JobFeed();
  JobFeed(const JobFeed&) = delete;
  JobFeed& operator=(const JobFeed&) = delete;

  // A job that is queued or running: its stored chunks (index order, from 0) and its init
  // segment (empty before chunk 0). Replaces an existing entry's chunk list.
  void Open(const std::string& job_id, int chunks_total, std::vector<ChunkRecord> stored,
            std::string init_segment);
  // Attaches `subscriber` to an open job: `first` (if any) at once, then the stored chunks
  // with index >= from_chunk (the first one sent carries the init segment), then
  // `progress` (if any), then live events. The chunks are sent by Replay() or the pump.
  // NotFound if the job is not open here; ResourceExhausted at a watcher cap.
  absl::Status Attach(const std::string& job_id, int from_chunk,
                      std::shared_ptr<JobSubscriber> subscriber,
                      std::optional<::magi::v1::GenerateEvent> first,
                      std::optional<::magi::v1::GenerateEvent> progress);
  // Attaches `subscriber` to a finished job: its stored chunks >= from_chunk, then `final`,
  // then OnClose(status). Reuses the entry if other watchers are replaying the job.
  absl::Status AttachFinished(const std::string& job_id, int chunks_total,
                              std::vector<ChunkRecord> stored, ::magi::v1::GenerateEvent final,
                              absl::Status status, int from_chunk,
                              std::shared_ptr<JobSubscriber> subscriber,
                              std::optional<::magi::v1::GenerateEvent> first);
  // Sends what the subscriber is owed and has room for, reading stored fragments on the
  // calling thread (no lock held). Call after Attach*, without holding locks of your own: a
  // subscriber without flow control has its whole replay delivered before this returns.
  void Replay(const JobSubscriber* subscriber);
  // Detaches (no more calls on it after this returns; its window is released). Idempotent.
  void Detach(const JobSubscriber* subscriber);

  // Chunk `chunk.index` of an open job was stored (`init_segment` non-empty for chunk 0).
  void PublishChunk(const std::string& job_id, const ChunkRecord& chunk,
                    const std::string& init_segment, const std::string& fragment);
  // A progress event (coalesced to the latest for watchers that are behind).
  void PublishProgress(const std::string& job_id, const ::magi::v1::GenerateEvent& event);
  // The job ended: watchers get `final` after the chunks they are owed, then OnClose(status).
  void Finish(const std::string& job_id, const ::magi::v1::GenerateEvent& final, const absl::Status& status);
  // Ends every stream now with `status` (shutdown); open jobs stay open.
  void CloseAll(const absl::Status& status);

  // Bytes handed to flow-controlled subscribers and not yet written.
  int64_t bytes_held() const;
  int watchers() const;
  bool HasWatchers(const std::string& job_id) const;

  // The event for a stored chunk (init segment not set); the one place it is built.
  static ::magi::v1::GenerateEvent ChunkEvent(const ChunkRecord& chunk, int chunks_total, std::string fragment);

 private:
  struct Watcher;
  struct Job;
  struct Inbox;

  absl::Status AttachLocked(Job& job, const std::string& job_id, int from_chunk,
                            std::shared_ptr<JobSubscriber> subscriber,
                            std::optional<::magi::v1::GenerateEvent> first,
                            std::optional<::magi::v1::GenerateEvent> progress);
  void Service(const std::shared_ptr<Watcher>& w);
  bool RoomLocked(const Watcher& w) const;
  bool CaughtUpLocked(const Watcher& w, const Job& job) const;
  void DeliverLocked(Watcher& w, const ::magi::v1::GenerateEvent& event);
  void CloseLocked(const std::shared_ptr<Watcher>& w, const absl::Status& status);
  void RemoveLocked(const std::shared_ptr<Watcher>& w);
  void WakeLocked(const std::shared_ptr<Watcher>& w);
  void PumpLoop();
  void UpdateGaugesLocked();

  JobStore* store_;
  const JobFeedOptions options_;
  ServerMetrics* metrics_;

  mutable std::mutex mu_;
  std::map<std::string, Job> jobs_;
  std::map<const JobSubscriber*, std::shared_ptr<Watcher>> watchers_;
  int64_t bytes_held_ = 0;

  std::shared_ptr<Inbox> inbox_;  // written-callbacks land here; outlives the feed if needed
  std::thread pump_;
};

}  // namespace magi

#endif  // MAGI_SERVER_JOB_FEED_H_
