#include "server/job_feed.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/server_metrics.h"

namespace magi {

using ::magi::v1::GenerateEvent;

struct JobFeed::Watcher {
  std::shared_ptr<JobSubscriber> subscriber;
  std::string job_id;
  int cursor = 0;          // the next chunk index owed
  bool init_sent = false;  // the first chunk sent carries the init segment
  bool flow = false;       // flow-controlled: counts what it has not written yet
  std::deque<int64_t> unwritten;  // sizes of events handed over, oldest first
  int64_t held = 0;
  std::optional<GenerateEvent> progress;  // the latest progress it is owed
  int progress_at = 0;                    // ... before chunk progress_at
  bool servicing = false;  // a thread is sending it what it is owed (maybe reading disk)
  bool removed = false;
};

struct JobFeed::Job {
  int chunks_total = 0;
  std::vector<ChunkRecord> chunks;  // stored chunks, chunks[i].index == i
  std::string init;
  bool init_known = false;
  bool finished = false;
  GenerateEvent final_event;
  absl::Status final_status;
  std::vector<std::shared_ptr<Watcher>> watchers;
};

// Where subscribers' written-callbacks and wake-ups land for the pump thread. Shared with
// the callbacks, so a late callback after the feed is gone finds a stopped inbox.
struct JobFeed::Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::weak_ptr<Watcher>, bool /*credit*/>> items;
  bool stop = false;
  void Push(std::weak_ptr<Watcher> w, bool credit) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stop) return;
      items.emplace_back(std::move(w), credit);
    }
    cv.notify_one();
  }
};

JobFeed::JobFeed(JobStore* store, const JobFeedOptions& options, ServerMetrics* metrics)
    : store_(store), options_(options), metrics_(metrics), inbox_(std::make_shared<Inbox>()) {
  pump_ = std::thread([this] { PumpLoop(); });
}

JobFeed::~JobFeed() {
  {
    std::lock_guard<std::mutex> lock(inbox_->mu);
    inbox_->stop = true;
    inbox_->items.clear();
  }
  inbox_->cv.notify_all();
  if (pump_.joinable()) pump_.join();
}

GenerateEvent JobFeed::ChunkEvent(const ChunkRecord& chunk, int chunks_total, std::string fragment) {
  GenerateEvent e;
  auto* c = e.mutable_chunk();
  c->set_index(chunk.index);
  c->set_frame_begin(chunk.frame_begin);
  c->set_frame_end(chunk.frame_end);
  c->set_chunks_total(chunks_total);
  c->set_fragment(std::move(fragment));
  return e;
}

void JobFeed::Open(const std::string& job_id, int chunks_total, std::vector<ChunkRecord> stored,
                   std::string init_segment) {
  std::lock_guard<std::mutex> lock(mu_);
  Job& job = jobs_[job_id];
  job.chunks_total = chunks_total;
  job.chunks = std::move(stored);
  job.init_known = !init_segment.empty();
  job.init = std::move(init_segment);
  job.finished = false;
}

absl::Status JobFeed::Attach(const std::string& job_id, int from_chunk,
                             std::shared_ptr<JobSubscriber> subscriber, std::optional<GenerateEvent> first,
                             std::optional<GenerateEvent> progress) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.finished) {
    return absl::NotFoundError(absl::StrCat("job_id: job '", job_id, "' is not running or queued"));
  }
  return AttachLocked(it->second, job_id, from_chunk, std::move(subscriber), std::move(first), std::move(progress));
}

absl::Status JobFeed::AttachFinished(const std::string& job_id, int chunks_total,
                                     std::vector<ChunkRecord> stored, GenerateEvent final,
                                     absl::Status status, int from_chunk,
                                     std::shared_ptr<JobSubscriber> subscriber,
                                     std::optional<GenerateEvent> first) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = jobs_.try_emplace(job_id);
  Job& job = it->second;
  if (inserted) {
    job.chunks_total = chunks_total;
    job.chunks = std::move(stored);
    job.finished = true;
    job.final_event = std::move(final);
    job.final_status = std::move(status);
  }
  absl::Status s = AttachLocked(job, job_id, from_chunk, std::move(subscriber), std::move(first), std::nullopt);
  if (job.finished && job.watchers.empty()) jobs_.erase(it);
  return s;
}

absl::Status JobFeed::AttachLocked(Job& job, const std::string& job_id, int from_chunk,
                                   std::shared_ptr<JobSubscriber> subscriber,
                                   std::optional<GenerateEvent> first,
                                   std::optional<GenerateEvent> progress) {
  if (static_cast<int>(job.watchers.size()) >= options_.max_watchers_per_job) {
    return absl::ResourceExhaustedError(absl::StrCat("job ", job_id, " already has ", job.watchers.size(),
                                                     " watchers (at most ", options_.max_watchers_per_job,
                                                     " per job); retry later"));
  }
  if (static_cast<int>(watchers_.size()) >= options_.max_watchers) {
    return absl::ResourceExhaustedError(absl::StrCat("the server already streams to ", watchers_.size(),
                                                     " watchers (at most ", options_.max_watchers, "); retry later"));
  }
  auto w = std::make_shared<Watcher>();
  w->subscriber = std::move(subscriber);
  w->job_id = job_id;
  w->cursor = from_chunk;
  std::weak_ptr<Watcher> weak = w;
  w->flow = w->subscriber->EnableFlowControl([inbox = inbox_, weak] { inbox->Push(weak, /*credit=*/true); });
  job.watchers.push_back(w);
  watchers_[w->subscriber.get()] = w;
  if (first) DeliverLocked(*w, *first);
  if (progress) {
    w->progress = std::move(progress);
    w->progress_at = static_cast<int>(job.chunks.size());
  }
  UpdateGaugesLocked();
  return absl::OkStatus();
}

void JobFeed::Replay(const JobSubscriber* subscriber) {
  std::shared_ptr<Watcher> w;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = watchers_.find(subscriber);
    if (it == watchers_.end()) return;
    w = it->second;
  }
  Service(w);
}

void JobFeed::Detach(const JobSubscriber* subscriber) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watchers_.find(subscriber);
  if (it == watchers_.end()) return;
  std::shared_ptr<Watcher> w = it->second;
  RemoveLocked(w);
}

bool JobFeed::RoomLocked(const Watcher& w) const {
  return !w.flow || w.held < std::max<int64_t>(1, options_.window_bytes);
}

bool JobFeed::CaughtUpLocked(const Watcher& w, const Job& job) const {
  return !w.servicing && !w.progress && w.cursor >= static_cast<int>(job.chunks.size());
}

void JobFeed::DeliverLocked(Watcher& w, const GenerateEvent& event) {
  if (w.flow) {
    const int64_t size = static_cast<int64_t>(event.ByteSizeLong());
    w.held += size;
    w.unwritten.push_back(size);
    bytes_held_ += size;
    UpdateGaugesLocked();
  }
  w.subscriber->OnEvent(event);
}

void JobFeed::CloseLocked(const std::shared_ptr<Watcher>& w, const absl::Status& status) {
  std::shared_ptr<JobSubscriber> subscriber = w->subscriber;
  RemoveLocked(w);
  subscriber->OnClose(status);
}

void JobFeed::RemoveLocked(const std::shared_ptr<Watcher>& w) {
  if (w->removed) return;
  w->removed = true;
  bytes_held_ -= w->held;
  w->held = 0;
  w->unwritten.clear();
  w->progress.reset();
  watchers_.erase(w->subscriber.get());
  auto it = jobs_.find(w->job_id);
  if (it != jobs_.end()) {
    auto& ws = it->second.watchers;
    ws.erase(std::remove(ws.begin(), ws.end(), w), ws.end());
    if (it->second.finished && ws.empty()) jobs_.erase(it);
  }
  UpdateGaugesLocked();
}

void JobFeed::WakeLocked(const std::shared_ptr<Watcher>& w) {
  if (!w->servicing && !w->removed && RoomLocked(*w)) inbox_->Push(w, /*credit=*/false);
}

void JobFeed::PublishChunk(const std::string& job_id, const ChunkRecord& chunk,
                           const std::string& init_segment, const std::string& fragment) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  if (chunk.index != static_cast<int>(job.chunks.size())) return;  // the manager checked the order
  if (!init_segment.empty()) {
    job.init = init_segment;
    job.init_known = true;
  }
  std::optional<GenerateEvent> event;
  for (const std::shared_ptr<Watcher>& w : job.watchers) {
    if (w->cursor == chunk.index && CaughtUpLocked(*w, job) && RoomLocked(*w) &&
        (w->init_sent || job.init_known)) {
      if (!event) event = ChunkEvent(chunk, job.chunks_total, fragment);
      if (w->init_sent) {
        DeliverLocked(*w, *event);
      } else {
        GenerateEvent with_init = *event;
        with_init.mutable_chunk()->set_init_segment(job.init);
        w->init_sent = true;
        DeliverLocked(*w, with_init);
      }
      w->cursor += 1;
    } else if (w->cursor <= chunk.index) {
      WakeLocked(w);  // behind: it reads this chunk from disk when it gets to it
    }
  }
  job.chunks.push_back(chunk);
}

void JobFeed::PublishProgress(const std::string& job_id, const GenerateEvent& event) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  for (const std::shared_ptr<Watcher>& w : job.watchers) {
    if (CaughtUpLocked(*w, job) && RoomLocked(*w)) {
      DeliverLocked(*w, event);
    } else {
      w->progress = event;
      w->progress_at = static_cast<int>(job.chunks.size());
      WakeLocked(w);
    }
  }
}

void JobFeed::Finish(const std::string& job_id, const GenerateEvent& final, const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  job.finished = true;
  job.final_event = final;
  job.final_status = status;
  std::vector<std::shared_ptr<Watcher>> ws = job.watchers;
  if (ws.empty()) {
    jobs_.erase(it);
    return;
  }
  for (const std::shared_ptr<Watcher>& w : ws) {
    if (CaughtUpLocked(*w, job) && RoomLocked(*w)) {
      DeliverLocked(*w, final);
      CloseLocked(w, status);  // may erase the job: `job` is not used after the last one
    } else {
      WakeLocked(w);
    }
  }
}

void JobFeed::CloseAll(const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<Watcher>> all;
  for (auto& [sub, w] : watchers_) all.push_back(w);
  for (const auto& w : all) CloseLocked(w, status);
}

void JobFeed::Service(const std::shared_ptr<Watcher>& w) {
  std::unique_lock<std::mutex> lock(mu_);
  if (w->removed || w->servicing) return;
  w->servicing = true;
  while (!w->removed) {
    auto it = jobs_.find(w->job_id);
    if (it == jobs_.end() || !RoomLocked(*w)) break;
    Job& job = it->second;
    if (w->progress && w->cursor >= w->progress_at) {
      GenerateEvent e = std::move(*w->progress);
      w->progress.reset();
      DeliverLocked(*w, e);
      continue;
    }
    if (w->cursor < static_cast<int>(job.chunks.size())) {
      const ChunkRecord rec = job.chunks[w->cursor];
      const int total = job.chunks_total;
      const bool need_init = !w->init_sent;
      const bool read_init = need_init && !job.init_known;
      const std::string job_id = w->job_id;
      lock.unlock();  // disk reads without the lock
      absl::StatusOr<std::string> fragment = store_->ReadFragment(job_id, rec.index);
      absl::StatusOr<std::string> init = read_init ? store_->ReadInitSegment(job_id) : std::string();
      lock.lock();
      if (w->removed) break;
      if (!fragment.ok() || !init.ok()) {
        const absl::Status& bad = !fragment.ok() ? fragment.status() : init.status();
        w->servicing = false;
        CloseLocked(w, absl::DataLossError(absl::StrCat("reading stored chunk ", rec.index, " of job ",
                                                        job_id, ": ", bad.message())));
        return;
      }
      auto again = jobs_.find(job_id);
      if (again == jobs_.end()) break;
      if (read_init && !again->second.init_known) {
        again->second.init = *std::move(init);
        again->second.init_known = true;
      }
      GenerateEvent e = ChunkEvent(rec, total, *std::move(fragment));
      if (need_init) {
        e.mutable_chunk()->set_init_segment(again->second.init);
        w->init_sent = true;
      }
      DeliverLocked(*w, e);
      w->cursor += 1;
      continue;
    }
    if (job.finished) {
      GenerateEvent final = job.final_event;
      absl::Status status = job.final_status;
      w->servicing = false;
      DeliverLocked(*w, final);
      CloseLocked(w, status);
      return;
    }
    break;  // caught up: live events come through Publish*
  }
  w->servicing = false;
}

void JobFeed::PumpLoop() {
  for (;;) {
    std::pair<std::weak_ptr<Watcher>, bool> item;
    {
      std::unique_lock<std::mutex> lock(inbox_->mu);
      inbox_->cv.wait(lock, [&] { return inbox_->stop || !inbox_->items.empty(); });
      if (inbox_->stop) return;
      item = std::move(inbox_->items.front());
      inbox_->items.pop_front();
    }
    std::shared_ptr<Watcher> w = item.first.lock();
    if (!w) continue;
    if (item.second) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!w->removed && !w->unwritten.empty()) {
        const int64_t size = w->unwritten.front();
        w->unwritten.pop_front();
        w->held -= size;
        bytes_held_ -= size;
        UpdateGaugesLocked();
      }
    }
    Service(w);
  }
}

int64_t JobFeed::bytes_held() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_held_;
}

int JobFeed::watchers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(watchers_.size());
}

bool JobFeed::HasWatchers(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  return it != jobs_.end() && !it->second.watchers.empty();
}

void JobFeed::UpdateGaugesLocked() {
  if (!metrics_) return;
  metrics_->feed_bytes_held->Set(static_cast<double>(bytes_held_));
  metrics_->feed_watchers->Set(static_cast<double>(watchers_.size()));
}

}  // namespace magi
