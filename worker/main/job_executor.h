// JobExecutor: runs one assignment on a worker group: JobRunner frames -> fMP4 fragments
// (Fmp4ChunkWriter, with the encoding the assignment's JobSpec fixes) -> ChunkReady /
// Progress messages, then the JobDone result.
//
// Resume: for an assignment with start_chunk > 0 the runner replays the earlier chunks'
// frames (OnPrefixChunk); they are encoded and dropped, so the encoder's timeline and
// fragment sequence continue exactly where the previous attempt stopped and the stored
// fragments plus the new ones form one valid MP4.
//
// Thread safety: Run() on one thread; Cancel() from any thread. As a FrameSink it takes
// OnChunk / OnPrefixChunk from the runner's delivery thread (job_runner.h) concurrently with
// the other calls: the chunk writer is touched only by those two, the flags are atomics and
// the send function is the link's (which serialises writes). Not copyable.
#ifndef MAGI_WORKER_MAIN_JOB_EXECUTOR_H_
#define MAGI_WORKER_MAIN_JOB_EXECUTOR_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "magi/internal/v1/worker_pool.pb.h"
#include "worker/runner/job_runner.h"

namespace magi {

class Fmp4ChunkWriter;

class JobExecutor final : public FrameSink {
 public:
  // Receives every message for the server; returns false if it could not be sent (the
  // stream is gone), which cancels the run.
  using SendFn = std::function<bool(const ::magi::internal::v1::WorkerMessage&)>;

  JobExecutor(JobRunner& runner, const ::magi::internal::v1::Assignment& assignment, SendFn send);
  ~JobExecutor() override;
  JobExecutor(const JobExecutor&) = delete;
  JobExecutor& operator=(const JobExecutor&) = delete;

  // Runs to the end; returns the status also sent as JobDone (unless the stream is gone).
  absl::Status Run();
  void Cancel() { cancelled_ = true; }
  // A live prompt from the server (PromptUpdate); the newest one waiting replaces older ones.
  // The runner takes it as its next chunk starts; PromptApplied answers it (from_chunk -1
  // when the run ends first).
  void OfferPrompt(const LivePrompt& prompt);
  // Eviction: the job stops after the chunk in progress is sent (the last chunk still ends
  // the job normally) and no JobDone follows, so the server re-queues it from that chunk
  // when the stream ends (WorkerLink::Drain).
  void HandBackAfterChunk() { hand_back_ = true; }
  const std::string& job_id() const { return job_.job_id; }
  // While Run() runs: true, and when the runner last showed progress (a step, a chunk, a
  // replayed prefix chunk; the start of Run before the first). The stall watchdog reads them.
  bool running() const { return running_.load(); }
  absl::Time last_progress() const { return absl::FromUnixNanos(last_progress_ns_.load()); }
  int attempt() const { return attempt_; }

  // FrameSink
  absl::Status OnPrefixChunk(int index, const std::vector<RgbFrame>& frames) override;
  absl::Status OnChunk(int index, const std::vector<RgbFrame>& frames) override;
  void OnProgress(const StepProgress& progress) override;
  bool Cancelled() const override { return cancelled_.load(); }
  absl::StatusOr<std::optional<LivePrompt>> TakeLivePrompt(int chunk) override;
  void OnLivePromptApplied(const LivePrompt& prompt, int chunk) override;

 private:
  JobRunner& runner_;
  RunnerJob job_;
  int attempt_ = 0;
  SendFn send_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> running_{false};
  std::atomic<bool> hand_back_{false};
  std::atomic<bool> handed_back_{false};
  std::atomic<int64_t> last_progress_ns_{0};
  void Touch() { last_progress_ns_ = absl::ToUnixNanos(absl::Now()); }
  void SendPromptApplied(const LivePrompt& prompt, int chunk);
  std::mutex prompt_mu_;
  std::optional<LivePrompt> offered_prompt_;  // guarded by prompt_mu_
  std::unique_ptr<Fmp4ChunkWriter> writer_;
  absl::Time start_;
};

}  // namespace magi

#endif  // MAGI_WORKER_MAIN_JOB_EXECUTOR_H_
