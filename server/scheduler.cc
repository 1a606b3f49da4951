#include "server/scheduler.h"

#include "absl/strings/str_cat.h"

namespace magi {

absl::Status Scheduler::Enqueue(const QueuedJob& job, bool bypass_capacity) {
  if (by_id_.count(job.job_id)) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job.job_id, " is already queued"));
  }
  if (!bypass_capacity && full()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "queue is full: ", by_id_.size(), " jobs waiting (capacity ", capacity_, "); retry later"));
  }
  order_.insert(Key{job.priority, job.seq, job.job_id});
  by_id_[job.job_id] = job;
  return absl::OkStatus();
}

bool Scheduler::Remove(const std::string& job_id) {
  auto it = by_id_.find(job_id);
  if (it == by_id_.end()) return false;
  order_.erase(Key{it->second.priority, it->second.seq, job_id});
  by_id_.erase(it);
  return true;
}

std::optional<QueuedJob> Scheduler::PopFirst(
    const std::function<bool(const QueuedJob&)>& eligible) {
  for (auto it = order_.begin(); it != order_.end(); ++it) {
    const QueuedJob& job = by_id_.at(it->job_id);
    if (!eligible(job)) continue;
    QueuedJob out = job;
    by_id_.erase(it->job_id);
    order_.erase(it);
    return out;
  }
  return std::nullopt;
}

int Scheduler::Position(const std::string& job_id) const {
  if (!by_id_.count(job_id)) return -1;
  int pos = 0;
  for (const Key& k : order_) {
    if (k.job_id == job_id) return pos;
    ++pos;
  }
  return -1;
}

std::vector<std::string> Scheduler::Ids() const {
  std::vector<std::string> ids;
  for (const Key& k : order_) ids.push_back(k.job_id);
  return ids;
}

}  // namespace magi
