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
// Rank groups (TP x CP, several jobs per group): every rank runs the same jobs, and their
// forwards' collectives must come in the same order on every rank, so the ranks must agree on
// which calls share each forward. Given a ForwardOrder, the deciding rank (the leader) groups
// its waiting calls as above and announces each forward's members by job slot before running
// it; the other ranks never decide: they run exactly the announced forwards, each as soon as
// the announced slots' calls are waiting (every rank's job in a slot makes the same calls in
// the same order, so they come). Membership is by slot: Join(slot) with the slot the job has
// on every rank of the group. (A following rank's job that ended on its own between the
// agreement before a call and the call -- the step's preparation failing on that rank alone --
// would leave an announced forward waiting for it; the engine polls the agreement right before
// each model call, so nothing but deterministic preparation lies between.)
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

class Communicator;

// Agreement on the order of batched forwards across a rank group (see above).
class ForwardOrder {
 public:
  virtual ~ForwardOrder() = default;
  // The rank that groups the calls (the leader); the others follow its announcements.
  virtual bool decides() const = 0;
  // The deciding rank: announces the next forward's member slots (`slots` in, in batch order);
  // the others: receive them (`slots` out). Blocks until every rank has taken part.
  virtual absl::Status Exchange(std::vector<int>* slots) = 0;
};

// A ForwardOrder over `comm` (a channel of the whole group used for nothing else); rank 0
// decides. `comm` must outlive it.
std::unique_ptr<ForwardOrder> MakeForwardOrder(Communicator& comm);

struct ForwardBatcherOptions {
  int max_batch = 4;  // calls per ForwardBatch, >= 1
  // How long the first waiting call waits for the other requests' calls before the waiting
  // ones run without them (a request busy between model calls, e.g. decoding inline).
  std::chrono::milliseconds straggler_wait{200};
  // Rank groups: the forward order all ranks share (not owned; null on a single rank).
  ForwardOrder* order = nullptr;
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
  // `slot`: the request's job slot, the same on every rank of a group (used with an order; at
  // most one joined request per slot).
  std::unique_ptr<Denoiser> Join(int slot = 0);

  ForwardBatcherStats stats() const;

 private:
  class Member;
  struct Pending;
  absl::StatusOr<at::Tensor> Submit(int slot, const DitForwardArgs& args);
  void Leave();
  // Runs the waiting calls (the caller is the thread that found them ready).
  void RunWaiting(std::unique_lock<std::mutex>& lock);
  // A following rank: receives the next announced forward, waits for its slots' calls, runs it.
  void RunAnnounced(std::unique_lock<std::mutex>& lock);
  // Runs one forward's calls (one batched forward, or one by one when it fails); returns the
  // model forwards run. Without the lock.
  int64_t RunGroup(const std::vector<Pending*>& group);
  // Marks `calls` done and updates the stats (with the lock).
  void Finish(const std::vector<Pending*>& calls, int64_t forwards, int widest);

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
