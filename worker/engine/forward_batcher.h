// ForwardBatcher: lets the engines of several requests running at once on one worker share
// DiT forwards (issue "several jobs per group"). Each request's engine runs on its own thread
// and takes a Denoiser from Join(); its Forward() calls wait until every joined request has a
// call waiting (or `straggler_wait` has passed since the first one came), and then the waiting
// calls run grouped: calls whose windows have the same shape (frames, size, chunk count) share
// one DitModel::ForwardBatch of up to `max_batch` calls; the other groups run one after
// another, in the order their first call came (requests at different stages interleave).
//
// Each request's result equals its solo run up to float32 rounding: a batched GEMM sees more
// rows, which BLAS may block differently (DitModel::ForwardBatch). A group whose batched
// forward fails runs its calls one by one, so one bad call fails only its own request.
//
// Thread safety: Join() and the Denoisers' Forward() from any threads; a Denoiser is used by
// one thread at a time (its engine's) and must be destroyed (it leaves the batch) before the
// batcher. The model is not owned and must outlive the batcher.
#ifndef MAGI_WORKER_ENGINE_FORWARD_BATCHER_H_
#define MAGI_WORKER_ENGINE_FORWARD_BATCHER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/engine/denoiser.h"

namespace magi {

struct ForwardBatcherOptions {
  int max_batch = 4;  // calls per ForwardBatch, >= 1
  // How long the first waiting call waits for the other requests' calls before the waiting
  // ones run without them (a request busy between model calls, e.g. decoding inline).
  std::chrono::milliseconds straggler_wait{200};
};

struct ForwardBatcherStats {
  int64_t calls = 0;     // Forward() calls answered
  int64_t forwards = 0;  // model forwards run (batched or single)
  int max_batch = 0;     // most calls one forward took
};

class ForwardBatcher {
 public:
  ForwardBatcher(const DitModel& model, const ForwardBatcherOptions& options = {});
  ~ForwardBatcher();
  ForwardBatcher(const ForwardBatcher&) = delete;
  ForwardBatcher& operator=(const ForwardBatcher&) = delete;

  // A request's Denoiser over the shared model. From now until it is destroyed, batches wait
  // for its calls (up to straggler_wait): join right before the request's engine starts.
  std::unique_ptr<Denoiser> Join();

  ForwardBatcherStats stats() const;

 private:
  class Member;
  struct Pending;
  absl::StatusOr<at::Tensor> Submit(const DitForwardArgs& args);
  void Leave();
  // Runs the waiting calls (the caller is the thread that found them ready).
  void RunWaiting(std::unique_lock<std::mutex>& lock);

  const DitModel& model_;
  const ForwardBatcherOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int members_ = 0;                // joined, not yet left
  std::deque<Pending*> waiting_;   // in arrival order
  bool running_ = false;           // a thread is running a batch
  ForwardBatcherStats stats_;
};

}  // namespace magi

#endif  // MAGI_WORKER_ENGINE_FORWARD_BATCHER_H_
