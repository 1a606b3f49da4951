// Scheduler: the bounded priority queue of jobs waiting for a worker group.
//
// Order: higher priority first; FIFO (by submission sequence number) within a priority. A
// job re-queued after its worker group died keeps its sequence number, so it goes back to
// the front of its priority. Admission control: Enqueue refuses new jobs with
// RESOURCE_EXHAUSTED when `capacity` jobs are waiting; re-queued and recovered jobs bypass
// the bound (they were admitted before and must never be lost).
//
// A small interface on purpose (Triton's scheduler): enqueue, remove, pop what a group can
// run, count. Thread safety: NOT thread-safe; the JobManager serialises calls.
#ifndef MAGI_SERVER_SCHEDULER_H_
#define MAGI_SERVER_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"

namespace magi {

struct QueuedJob {
  std::string job_id;
  int priority = 0;
  int64_t seq = 0;  // submission order
  std::string model;
  int width = 0;
  int height = 0;
};

class Scheduler {
 public:
  explicit Scheduler(size_t capacity) : capacity_(capacity) {}
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues `job`. ResourceExhausted (naming the capacity) when full and !bypass_capacity;
  // AlreadyExists if the id is queued.
  absl::Status Enqueue(const QueuedJob& job, bool bypass_capacity = false);
  // Removes a queued job; false if it was not queued.
  bool Remove(const std::string& job_id);
  // Removes and returns the first job (in queue order) for which `eligible` is true.
  std::optional<QueuedJob> PopFirst(const std::function<bool(const QueuedJob&)>& eligible);
  // 0-based place in queue order, or -1 if not queued.
  int Position(const std::string& job_id) const;
  bool Contains(const std::string& job_id) const { return by_id_.count(job_id) > 0; }
  size_t size() const { return by_id_.size(); }
  size_t capacity() const { return capacity_; }
  bool full() const { return by_id_.size() >= capacity_; }
  // Queued ids in order.
  std::vector<std::string> Ids() const;

 private:
  struct Key {
    int priority;
    int64_t seq;
    std::string job_id;
    bool operator<(const Key& o) const {
      if (priority != o.priority) return priority > o.priority;
      if (seq != o.seq) return seq < o.seq;
      return job_id < o.job_id;
    }
  };
  size_t capacity_;
  std::set<Key> order_;
  std::unordered_map<std::string, QueuedJob> by_id_;
};

}  // namespace magi

#endif  // MAGI_SERVER_SCHEDULER_H_
