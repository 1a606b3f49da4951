#include "server/job_manager.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_format.h"
#include "server/server_metrics.h"

namespace magi {
namespace {

using ::magi::internal::v1::ServerMessage;
using ::magi::internal::v1::WorkerMessage;
using ::magi::v1::GenerateEvent;
using ::magi::v1::JobState;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }
int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

void Log(const std::string& line) {
  std::fprintf(stderr, "magi-server: %s\n", line.c_str());
}

const char* OutcomeOf(JobState state, const absl::Status& status) {
  switch (state) {
    case ::magi::v1::JOB_STATE_SUCCEEDED: return "succeeded";
    case ::magi::v1::JOB_STATE_CANCELLED: return "cancelled";
    default: return absl::IsDeadlineExceeded(status) ? "deadline_exceeded" : "failed";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(const JobManagerOptions& options,
                                                               ServerMetrics* metrics) {
  if (options.state_dir.empty()) return absl::InvalidArgumentError("--state-dir: required");
  if (options.max_queue < 1) return absl::InvalidArgumentError("--max-queue: must be >= 1");
  std::unique_ptr<JobManager> m(new JobManager(options, metrics));
  auto store = JobStore::Open(options.state_dir);
  if (!store.ok()) return store.status();
  m->store_ = std::move(*store);
  if (auto s = m->Recover(); !s.ok()) return s;
  m->tick_thread_ = std::thread([p = m.get()] { p->TickLoop(); });
  return m;
}

JobManager::JobManager(const JobManagerOptions& options, ServerMetrics* metrics)
    : options_(options), metrics_(metrics), catalog_(options.default_model),
      scheduler_(options.max_queue) {}

JobManager::~JobManager() {
  {
    std::lock_guard<std::mutex> lock(tick_mu_);
    stop_ = true;
  }
  tick_cv_.notify_all();
  if (tick_thread_.joinable()) tick_thread_.join();
}

absl::Status JobManager::Recover() {
  auto jobs = store_->LoadUnfinished();
  if (!jobs.ok()) return jobs.status();
  std::lock_guard<std::mutex> lock(mu_);
  for (JobRecord& rec : *jobs) {
    ActiveJob job;
    job.rec = std::move(rec);
    job.rec.state = ::magi::v1::JOB_STATE_QUEUED;
    job.queued_since_ms = NowMs();
    job.first_chunk_seen = job.rec.chunks_done > 0;
    if (auto s = store_->Update(job.rec); !s.ok()) return s;
    auto chunks = store_->Chunks(job.rec.job_id);
    if (chunks.ok() && !chunks->empty()) job.frames_done = chunks->back().frame_end;
    QueuedJob q{job.rec.job_id, job.rec.request.priority(), job.rec.seq, job.rec.request.model(),
                job.rec.request.width(), job.rec.request.height()};
    if (auto s = scheduler_.Enqueue(q, /*bypass_capacity=*/true); !s.ok()) return s;
    Log(absl::StrCat("recovered job ", job.rec.job_id, " (", job.rec.chunks_done, "/",
                     job.rec.chunks_total, " chunks done)"));
    std::string id = job.rec.job_id;
    active_.emplace(id, std::move(job));
  }
  UpdateGaugesLocked();
  return absl::OkStatus();
}

std::string JobManager::NewJobId() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          static_cast<uint64_t>(NowNs()));
  return absl::StrFormat("j-%016x", rng());
}

// ---------------------------------------------------------------------------------------
// Public API

absl::StatusOr<::magi::v1::Job> JobManager::Submit(const ::magi::v1::GenerateRequest& request) {
  if (draining_) {
    if (metrics_) metrics_->JobsRejected("draining").Increment();
    return absl::UnavailableError("server is draining (shutting down); submit to another server or retry later");
  }
  auto valid = ValidateGenerateRequest(request, catalog_, NowMs(), options_.limits);
  if (!valid.ok()) {
    if (metrics_) {
      metrics_->JobsRejected(absl::IsDeadlineExceeded(valid.status()) ? "deadline_exceeded"
                                                                       : "invalid_argument").Increment();
    }
    return valid.status();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!valid->request().idempotency_key().empty()) {
    auto existing = store_->FindByIdempotencyKey(valid->request().idempotency_key());
    if (!existing.ok()) return existing.status();
    if (existing->has_value()) {
      auto it = active_.find((*existing)->job_id);
      return JobViewLocked(it != active_.end() ? it->second.rec : **existing);
    }
  }
  if (scheduler_.full()) {
    if (metrics_) metrics_->JobsRejected("queue_full").Increment();
    return absl::ResourceExhaustedError(absl::StrCat("queue is full: ", scheduler_.size(),
                                                     " jobs waiting (--max-queue ",
                                                     scheduler_.capacity(), "); retry later"));
  }
  ActiveJob job;
  job.rec.job_id = NewJobId();
  job.rec.state = ::magi::v1::JOB_STATE_QUEUED;
  job.rec.request = valid->request();
  job.rec.created_ms = NowMs();
  job.rec.chunks_total = valid->chunks_total();
  job.queued_since_ms = job.rec.created_ms;
  if (auto s = store_->Insert(&job.rec); !s.ok()) return s;  // accepted = persisted
  QueuedJob q{job.rec.job_id, job.rec.request.priority(), job.rec.seq, job.rec.request.model(),
              job.rec.request.width(), job.rec.request.height()};
  if (auto s = scheduler_.Enqueue(q); !s.ok()) return s;
  if (metrics_) metrics_->jobs_submitted->Increment();
  std::string id = job.rec.job_id;
  active_.emplace(id, std::move(job));
  ::magi::v1::Job view = JobViewLocked(active_.at(id).rec);
  DispatchLocked();
  UpdateGaugesLocked();
  return view;
}

absl::Status JobManager::Watch(const std::string& job_id, int from_chunk,
                               std::shared_ptr<JobSubscriber> subscriber, bool accepted_first) {
  if (from_chunk < 0) {
    return absl::InvalidArgumentError(absl::StrCat("from_chunk: ", from_chunk, " is negative; allowed >= 0"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  Watcher w{std::move(subscriber), from_chunk, false};
  auto it = active_.find(job_id);
  const JobRecord* rec = nullptr;
  std::optional<JobRecord> stored;
  if (it != active_.end()) {
    rec = &it->second.rec;
  } else {
    auto got = store_->Get(job_id);
    if (!got.ok()) return got.status();
    if (!got->has_value()) return absl::NotFoundError(absl::StrCat("job_id: no job '", job_id, "'"));
    stored = std::move(**got);
    rec = &*stored;
  }
  if (accepted_first) {
    GenerateEvent e;
    e.mutable_accepted()->set_job_id(job_id);
    e.mutable_accepted()->set_queue_position(scheduler_.Position(job_id));
    w.subscriber->OnEvent(e);
  }
  if (rec->chunks_done > from_chunk) {
    auto chunks = store_->Chunks(job_id);
    if (!chunks.ok()) return chunks.status();
    for (const ChunkRecord& c : *chunks) {
      if (c.index < from_chunk || c.index >= rec->chunks_done) continue;
      auto frag = store_->ReadFragment(job_id, c.index);
      if (!frag.ok()) return frag.status();
      ::magi::v1::VideoChunk chunk;
      chunk.set_index(c.index);
      chunk.set_frame_begin(c.frame_begin);
      chunk.set_frame_end(c.frame_end);
      chunk.set_chunks_total(rec->chunks_total);
      chunk.set_fragment(std::move(*frag));
      SendChunkLocked(w, job_id, chunk);
    }
  }
  if (it != active_.end()) {
    w.subscriber->OnEvent(ProgressEventLocked(it->second));
    it->second.watchers.push_back(std::move(w));
    return absl::OkStatus();
  }
  // Finished: final event, then close.
  GenerateEvent e;
  absl::Status final_status = absl::OkStatus();
  if (rec->state == ::magi::v1::JOB_STATE_SUCCEEDED) {
    e.mutable_completed()->set_job_id(job_id);
    *e.mutable_completed()->mutable_stats() = rec->stats;
  } else {
    final_status = absl::Status(static_cast<absl::StatusCode>(rec->error_code), rec->error_message);
    if (final_status.ok()) final_status = absl::UnknownError("job failed");
    e.mutable_failed()->set_job_id(job_id);
    e.mutable_failed()->set_code(static_cast<int>(final_status.code()));
    e.mutable_failed()->set_message(std::string(final_status.message()));
  }
  w.subscriber->OnEvent(e);
  w.subscriber->OnClose(final_status);
  return absl::OkStatus();
}

void JobManager::Unwatch(const JobSubscriber* subscriber) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, job] : active_) {
    auto& ws = job.watchers;
    ws.erase(std::remove_if(ws.begin(), ws.end(),
                            [&](const Watcher& w) { return w.subscriber.get() == subscriber; }),
             ws.end());
  }
}

absl::StatusOr<::magi::v1::Job> JobManager::Cancel(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = active_.find(job_id);
  if (it == active_.end()) {
    auto got = store_->Get(job_id);
    if (!got.ok()) return got.status();
    if (!got->has_value()) return absl::NotFoundError(absl::StrCat("job_id: no job '", job_id, "'"));
    return (*got)->ToJob();  // already finished: cancelling is a no-op
  }
  ActiveJob& job = it->second;
  if (!job.group.empty()) {
    auto g = groups_.find(job.group);
    if (g != groups_.end()) {
      ServerMessage m;
      m.mutable_cancel()->set_job_id(job_id);
      m.mutable_cancel()->set_attempt(job.rec.attempts);
      m.mutable_cancel()->set_reason("cancelled by client");
      g->second.link->Send(m);
    }
  } else {
    scheduler_.Remove(job_id);
  }
  FinishLocked(job_id, ::magi::v1::JOB_STATE_CANCELLED, absl::CancelledError("job cancelled by client"));
  auto got = store_->Get(job_id);
  if (!got.ok()) return got.status();
  if (!got->has_value()) return absl::NotFoundError(absl::StrCat("job_id: no job '", job_id, "'"));
  return (*got)->ToJob();
}

absl::StatusOr<::magi::v1::Job> JobManager::GetJob(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = active_.find(job_id);
  if (it != active_.end()) return JobViewLocked(it->second.rec);
  auto got = store_->Get(job_id);
  if (!got.ok()) return got.status();
  if (!got->has_value()) return absl::NotFoundError(absl::StrCat("job_id: no job '", job_id, "'"));
  return (*got)->ToJob();
}

absl::StatusOr<::magi::v1::ListJobsResponse> JobManager::ListJobs(
    const ::magi::v1::ListJobsRequest& request) {
  int page_size = request.page_size() == 0 ? 50 : request.page_size();
  if (page_size < 1 || page_size > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: ", request.page_size(), " is out of range; allowed [0, 1000] (0 = 50)"));
  }
  if (!::magi::v1::JobState_IsValid(request.state())) {
    return absl::InvalidArgumentError(absl::StrCat("state: ", request.state(), " is not a JobState"));
  }
  auto page = store_->List(request.state(), page_size, request.page_token());
  if (!page.ok()) return page.status();
  std::lock_guard<std::mutex> lock(mu_);
  ::magi::v1::ListJobsResponse out;
  for (const JobRecord& rec : page->jobs) {
    auto it = active_.find(rec.job_id);
    *out.add_jobs() = JobViewLocked(it != active_.end() ? it->second.rec : rec);
  }
  out.set_next_page_token(page->next_page_token);
  return out;
}

absl::StatusOr<std::string> JobManager::FinalVideoPath(const std::string& job_id) {
  auto job = GetJob(job_id);
  if (!job.ok()) return job.status();
  if (job->state() != ::magi::v1::JOB_STATE_SUCCEEDED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " is ", ::magi::v1::JobState_Name(job->state()),
        "; the video exists once it succeeded (use Watch to stream chunks)"));
  }
  return store_->VideoPath(job_id);
}

// ---------------------------------------------------------------------------------------
// Worker groups

absl::StatusOr<std::string> JobManager::RegisterGroup(
    const ::magi::internal::v1::Register& reg, std::shared_ptr<WorkerGroupLink> link) {
  if (reg.models_size() == 0) {
    return absl::InvalidArgumentError("register.models: a worker group must serve at least one model");
  }
  if (reg.slots() < 1 || reg.slots() > 64) {
    return absl::InvalidArgumentError(absl::StrCat("register.slots: ", reg.slots(), " is out of range; allowed [1, 64]"));
  }
  for (int i = 0; i < reg.models_size(); ++i) {
    const auto& m = reg.models(i);
    if (m.name().empty() || m.frames_per_chunk() < 1 || m.max_frames() < 1 || m.max_width() < 16 ||
        m.max_height() < 16 || m.max_steps() < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "register.models[", i, "]: name, frames_per_chunk, max_frames, max_steps (>= 1) and "
          "max_width/max_height (>= 16) are required"));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  Group g;
  g.key = absl::StrCat(reg.group_id().empty() ? "group" : reg.group_id(), "#", ++next_group_serial_);
  for (const auto& m : reg.models()) catalog_.Register(g.key, m);
  g.info = reg;
  g.link = std::move(link);
  g.last_seen_ms = NowMs();
  ServerMessage hello;
  hello.mutable_registered()->set_group_id(g.key);
  hello.mutable_registered()->set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  g.link->Send(hello);
  std::string key = g.key;
  std::string models;
  for (const auto& m : reg.models()) {
    absl::StrAppend(&models, models.empty() ? "" : "; ", m.name(), ": special tokens ",
                    m.special_tokens().empty() ? std::string("none") : absl::StrJoin(m.special_tokens(), ", "));
  }
  Log(absl::StrCat("worker group ", key, " registered (", reg.runner(), ", ", reg.slots(), " slot(s); ", models, ")"));
  groups_.emplace(key, std::move(g));
  DispatchLocked();
  UpdateGaugesLocked();
  return key;
}

void JobManager::OnWorkerMessage(const std::string& key, const WorkerMessage& msg) {
  std::lock_guard<std::mutex> lock(mu_);
  auto g = groups_.find(key);
  if (g == groups_.end()) return;  // already dropped
  g->second.last_seen_ms = NowMs();
  auto job_for = [&](const std::string& id, int attempt) -> ActiveJob* {
    auto it = active_.find(id);
    if (it == active_.end() || it->second.group != key || it->second.rec.attempts != attempt) return nullptr;
    return &it->second;
  };
  switch (msg.msg_case()) {
    case WorkerMessage::kHeartbeat:
    case WorkerMessage::kRegister:
      return;
    case WorkerMessage::kProgress: {
      const auto& p = msg.progress();
      if (metrics_ && p.step_seconds() > 0) metrics_->step_seconds->Observe(p.step_seconds());
      ActiveJob* job = job_for(p.job_id(), p.attempt());
      if (!job) return;
      GenerateEvent e;
      auto* jp = e.mutable_progress();
      jp->set_chunk(p.chunk());
      jp->set_chunks_done(job->rec.chunks_done);
      jp->set_chunks_total(job->rec.chunks_total);
      jp->set_step(p.step());
      jp->set_total_steps(p.total_steps());
      jp->set_eta_seconds(p.eta_seconds());
      jp->set_state(job->rec.state);
      jp->set_queue_position(-1);
      BroadcastLocked(*job, e);
      return;
    }
    case WorkerMessage::kChunk: {
      const auto& c = msg.chunk();
      ActiveJob* job = job_for(c.job_id(), c.attempt());
      if (!job) return;
      if (c.index() < job->rec.chunks_done) return;  // a duplicate after a resume
      if (c.index() != job->rec.chunks_done || c.index() >= job->rec.chunks_total ||
          (c.index() == 0 && c.init_segment().empty()) || c.fragment().empty()) {
        Log(absl::StrCat("group ", key, " sent a bad chunk ", c.index(), " for job ", c.job_id(),
                         " (expected ", job->rec.chunks_done, "); dropping the group"));
        DropGroupLocked(key, absl::InvalidArgumentError("protocol violation: bad chunk"), true);
        return;
      }
      ChunkRecord rec{c.index(), c.frame_begin(), c.frame_end(), static_cast<int64_t>(c.fragment().size())};
      if (auto s = store_->PutChunk(c.job_id(), rec, c.init_segment(), c.fragment()); !s.ok()) {
        Log(absl::StrCat("storing chunk ", c.index(), " of ", c.job_id(), " failed: ", s.message()));
        ServerMessage m;
        m.mutable_cancel()->set_job_id(c.job_id());
        m.mutable_cancel()->set_attempt(c.attempt());
        m.mutable_cancel()->set_reason("server could not store the chunk");
        g->second.link->Send(m);
        FinishLocked(c.job_id(), ::magi::v1::JOB_STATE_FAILED, s);
        return;
      }
      job->rec.chunks_done = c.index() + 1;
      job->frames_done = c.frame_end();
      const int64_t now = NowMs();
      if (metrics_) {
        metrics_->chunks_emitted->Increment();
        metrics_->chunk_bytes->Increment(static_cast<double>(c.fragment().size()));
        if (c.ready_unix_ns() > 0) {
          metrics_->chunk_delivery_lag_seconds->Observe(std::max<int64_t>(0, NowNs() - c.ready_unix_ns()) / 1e9);
        }
      }
      if (!job->first_chunk_seen) {
        job->first_chunk_seen = true;
        double ttfc = (now - job->rec.created_ms) / 1000.0;
        job->rec.stats.set_time_to_first_chunk_seconds(ttfc);
        if (metrics_) metrics_->time_to_first_chunk_seconds->Observe(ttfc);
        store_->Update(job->rec).IgnoreError();
      }
      ::magi::v1::VideoChunk chunk;
      chunk.set_index(c.index());
      chunk.set_frame_begin(c.frame_begin());
      chunk.set_frame_end(c.frame_end());
      chunk.set_chunks_total(job->rec.chunks_total);
      chunk.set_fragment(c.fragment());
      for (Watcher& w : job->watchers) {
        if (c.index() < w.from_chunk) continue;
        SendChunkLocked(w, c.job_id(), chunk);
      }
      return;
    }
    case WorkerMessage::kDone: {
      const auto& d = msg.done();
      g->second.busy.erase(d.job_id());
      ActiveJob* job = job_for(d.job_id(), d.attempt());
      if (job) {
        if (d.code() == 0) {
          if (job->rec.chunks_done < job->rec.chunks_total) {
            FinishLocked(d.job_id(), ::magi::v1::JOB_STATE_FAILED,
                         absl::InternalError(absl::StrCat("worker finished after ", job->rec.chunks_done,
                                                          " of ", job->rec.chunks_total, " chunks")));
          } else {
            auto bytes = store_->WriteFinalVideo(d.job_id(), job->rec.chunks_done);
            if (!bytes.ok()) {
              FinishLocked(d.job_id(), ::magi::v1::JOB_STATE_FAILED, bytes.status());
            } else {
              job->rec.video_bytes = *bytes;
              FinishLocked(d.job_id(), ::magi::v1::JOB_STATE_SUCCEEDED, absl::OkStatus());
            }
          }
        } else {
          absl::Status s(static_cast<absl::StatusCode>(d.code()), d.message());
          FinishLocked(d.job_id(),
                       absl::IsCancelled(s) ? ::magi::v1::JOB_STATE_CANCELLED : ::magi::v1::JOB_STATE_FAILED, s);
        }
      }
      DispatchLocked();
      UpdateGaugesLocked();
      return;
    }
    case WorkerMessage::MSG_NOT_SET:
      return;
  }
}

void JobManager::OnGroupLost(const std::string& key, const absl::Status& why) {
  std::lock_guard<std::mutex> lock(mu_);
  DropGroupLocked(key, why, /*close_link=*/false);
}

void JobManager::DropGroupLocked(const std::string& key, const absl::Status& why, bool close_link) {
  auto g = groups_.find(key);
  if (g == groups_.end()) return;
  Group group = std::move(g->second);
  groups_.erase(g);
  catalog_.Unregister(key);
  Log(absl::StrCat("worker group ", key, " lost: ", why.ToString()));
  for (const std::string& id : group.busy) {
    auto it = active_.find(id);
    if (it != active_.end() && it->second.group == key) RequeueLocked(it->second);
  }
  if (close_link) group.link->Close(why);
  DispatchLocked();
  UpdateGaugesLocked();
}

// ---------------------------------------------------------------------------------------
// Scheduling

void JobManager::DispatchLocked() {
  if (draining_) return;
  for (auto& [key, group] : groups_) {
    while (static_cast<int>(group.busy.size()) < group.info.slots() && scheduler_.size() > 0) {
      const auto& models = group.info.models();
      auto next = scheduler_.PopFirst([&](const QueuedJob& q) {
        for (const auto& m : models) {
          if (m.name() == q.model && q.width <= m.max_width() && q.height <= m.max_height()) return true;
        }
        return false;
      });
      if (!next) break;
      auto it = active_.find(next->job_id);
      if (it == active_.end()) continue;
      // The stored request has every default filled in, so the group's declaration of the
      // model rebuilds the edge's JobSpec; a group that declares the model otherwise fails
      // the job visibly rather than running another geometry.
      absl::StatusOr<JobSpec> spec = absl::NotFoundError("");
      for (const auto& m : models) {
        if (m.name() == it->second.rec.request.model()) spec = BuildJobSpec(it->second.rec.request, m);
      }
      if (spec.ok() && spec->chunks_total() != it->second.rec.chunks_total) {
        spec = absl::FailedPreconditionError(absl::StrCat(
            "worker group ", group.key, " declares model '", it->second.rec.request.model(), "' with ",
            spec->chunks_total(), " chunks for this job; it was accepted with ", it->second.rec.chunks_total));
      }
      if (!spec.ok()) {
        FinishLocked(next->job_id, ::magi::v1::JOB_STATE_FAILED,
                     absl::FailedPreconditionError(absl::StrCat("assigning to ", group.key, ": ", spec.status().message())));
        continue;
      }
      AssignLocked(group, it->second, *std::move(spec));
    }
  }
}

void JobManager::AssignLocked(Group& group, ActiveJob& job, JobSpec spec) {
  const int64_t now = NowMs();
  job.group = group.key;
  job.assigned_ms = now;
  job.rec.state = ::magi::v1::JOB_STATE_RUNNING;
  job.rec.attempts += 1;
  if (job.rec.started_ms == 0) {
    job.rec.started_ms = now;
    job.rec.stats.set_queue_wait_seconds((now - job.rec.created_ms) / 1000.0);
  }
  if (metrics_) metrics_->queue_wait_seconds->Observe((now - job.queued_since_ms) / 1000.0);
  store_->Update(job.rec).IgnoreError();
  group.busy.insert(job.rec.job_id);

  ServerMessage m;
  auto* a = m.mutable_assign();
  a->set_job_id(job.rec.job_id);
  a->set_attempt(job.rec.attempts);
  *a->mutable_spec() = std::move(spec);
  a->set_start_chunk(job.rec.chunks_done);
  if (job.rec.chunks_done > 0) {
    auto prefix = store_->ReadVideoPrefix(job.rec.job_id, job.rec.chunks_done);
    if (prefix.ok()) a->set_done_video(std::move(*prefix));
  }
  Log(absl::StrCat("job ", job.rec.job_id, " attempt ", job.rec.attempts, " -> ", group.key,
                   " from chunk ", job.rec.chunks_done));
  group.link->Send(m);
  BroadcastLocked(job, ProgressEventLocked(job));
}

void JobManager::RequeueLocked(ActiveJob& job) {
  job.group.clear();
  job.rec.state = ::magi::v1::JOB_STATE_QUEUED;
  job.queued_since_ms = NowMs();
  store_->Update(job.rec).IgnoreError();
  QueuedJob q{job.rec.job_id, job.rec.request.priority(), job.rec.seq, job.rec.request.model(),
              job.rec.request.width(), job.rec.request.height()};
  scheduler_.Enqueue(q, /*bypass_capacity=*/true).IgnoreError();
  if (metrics_) metrics_->jobs_requeued->Increment();
  Log(absl::StrCat("job ", job.rec.job_id, " re-queued at chunk ", job.rec.chunks_done));
  BroadcastLocked(job, ProgressEventLocked(job));
}

void JobManager::FinishLocked(const std::string& job_id, JobState state, const absl::Status& status) {
  auto it = active_.find(job_id);
  if (it == active_.end()) return;
  ActiveJob& job = it->second;
  const int64_t now = NowMs();
  scheduler_.Remove(job_id);
  job.rec.state = state;
  job.rec.finished_ms = now;
  job.rec.error_code = static_cast<int>(status.code());
  job.rec.error_message = std::string(status.message());
  job.rec.stats.set_total_seconds((now - job.rec.created_ms) / 1000.0);
  job.rec.stats.set_run_seconds(job.rec.started_ms ? (now - job.rec.started_ms) / 1000.0 : 0.0);
  job.rec.stats.set_chunks(job.rec.chunks_done);
  job.rec.stats.set_frames(job.frames_done);
  job.rec.stats.set_attempts(job.rec.attempts);
  job.rec.stats.set_video_bytes(job.rec.video_bytes);
  if (auto s = store_->Update(job.rec); !s.ok()) Log(absl::StrCat("persisting ", job_id, ": ", s.message()));
  if (metrics_) {
    metrics_->JobsFinished(OutcomeOf(state, status)).Increment();
    if (state == ::magi::v1::JOB_STATE_SUCCEEDED) {
      metrics_->job_latency_seconds->Observe(job.rec.stats.total_seconds());
    }
  }
  GenerateEvent e;
  if (state == ::magi::v1::JOB_STATE_SUCCEEDED) {
    e.mutable_completed()->set_job_id(job_id);
    *e.mutable_completed()->mutable_stats() = job.rec.stats;
  } else {
    e.mutable_failed()->set_job_id(job_id);
    e.mutable_failed()->set_code(static_cast<int>(status.code()));
    e.mutable_failed()->set_message(std::string(status.message()));
  }
  for (Watcher& w : job.watchers) {
    w.subscriber->OnEvent(e);
    w.subscriber->OnClose(status);
  }
  Log(absl::StrCat("job ", job_id, " ", ::magi::v1::JobState_Name(state),
                   status.ok() ? "" : absl::StrCat(": ", status.ToString())));
  active_.erase(it);
  idle_cv_.notify_all();
  UpdateGaugesLocked();
  RetentionLocked();
}

void JobManager::BroadcastLocked(ActiveJob& job, const GenerateEvent& event) {
  for (Watcher& w : job.watchers) w.subscriber->OnEvent(event);
}

void JobManager::SendChunkLocked(Watcher& w, const std::string& job_id,
                                 const ::magi::v1::VideoChunk& chunk) {
  GenerateEvent e;
  *e.mutable_chunk() = chunk;
  if (!w.init_sent) {
    auto init = store_->ReadInitSegment(job_id);
    if (init.ok()) e.mutable_chunk()->set_init_segment(std::move(*init));
    w.init_sent = true;
  }
  w.subscriber->OnEvent(e);
}

::magi::v1::Job JobManager::JobViewLocked(const JobRecord& rec) const {
  ::magi::v1::Job job = rec.ToJob();
  job.set_queue_position(scheduler_.Position(rec.job_id));
  return job;
}

GenerateEvent JobManager::ProgressEventLocked(const ActiveJob& job) const {
  GenerateEvent e;
  auto* p = e.mutable_progress();
  p->set_chunk(job.rec.chunks_done);
  p->set_chunks_done(job.rec.chunks_done);
  p->set_chunks_total(job.rec.chunks_total);
  p->set_state(job.rec.state);
  p->set_queue_position(scheduler_.Position(job.rec.job_id));
  return e;
}

void JobManager::UpdateGaugesLocked() {
  if (!metrics_) return;
  metrics_->queue_depth->Set(static_cast<double>(scheduler_.size()));
  int running = 0;
  for (const auto& [id, job] : active_) running += job.group.empty() ? 0 : 1;
  metrics_->jobs_running->Set(running);
  metrics_->worker_groups_up->Set(static_cast<double>(groups_.size()));
}

void JobManager::RetentionLocked() {
  int64_t before = options_.retention_hours > 0
                       ? NowMs() - static_cast<int64_t>(options_.retention_hours * 3600e3)
                       : 0;
  auto expired = store_->ExpiredJobs(options_.retention_jobs, before);
  if (!expired.ok()) return;
  for (const std::string& id : *expired) {
    if (active_.count(id)) continue;
    store_->Delete(id).IgnoreError();
  }
  last_retention_ms_ = NowMs();
}

// ---------------------------------------------------------------------------------------
// Operations

void JobManager::StartDraining() {
  draining_ = true;
  Log("draining: admission stopped");
}

int JobManager::running_jobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  int running = 0;
  for (const auto& [id, job] : active_) running += job.group.empty() ? 0 : 1;
  return running;
}

int JobManager::queued_jobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(scheduler_.size());
}

int JobManager::groups_up() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(groups_.size());
}

bool JobManager::WaitForNoRunningJobs(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  auto none_running = [&] {
    for (const auto& [id, job] : active_) {
      if (!job.group.empty()) return false;
    }
    return true;
  };
  return idle_cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout), none_running);
}

void JobManager::CloseAllStreams(const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, job] : active_) {
    for (Watcher& w : job.watchers) w.subscriber->OnClose(status);
    job.watchers.clear();
  }
  for (auto& [key, group] : groups_) group.link->Close(status);
}

void JobManager::TickLoop() {
  std::unique_lock<std::mutex> lock(tick_mu_);
  while (!stop_) {
    tick_cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (stop_) break;
    lock.unlock();
    Tick();
    lock.lock();
  }
}

void JobManager::Tick() {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = NowMs();
  // Deadlines.
  std::vector<std::string> late;
  for (const auto& [id, job] : active_) {
    int64_t d = job.rec.request.deadline_unix_ms();
    if (d > 0 && now >= d) late.push_back(id);
  }
  for (const std::string& id : late) {
    ActiveJob& job = active_.at(id);
    if (!job.group.empty()) {
      auto g = groups_.find(job.group);
      if (g != groups_.end()) {
        ServerMessage m;
        m.mutable_cancel()->set_job_id(id);
        m.mutable_cancel()->set_attempt(job.rec.attempts);
        m.mutable_cancel()->set_reason("deadline exceeded");
        g->second.link->Send(m);
      }
    }
    FinishLocked(id, ::magi::v1::JOB_STATE_FAILED,
                 absl::DeadlineExceededError(absl::StrCat(
                     "deadline_unix_ms ", job.rec.request.deadline_unix_ms(), " passed after ",
                     job.rec.chunks_done, " of ", job.rec.chunks_total, " chunks")));
  }
  // Silent groups.
  std::vector<std::string> silent;
  const int64_t timeout_ms = static_cast<int64_t>(options_.worker_timeout_seconds * 1000);
  for (const auto& [key, g] : groups_) {
    if (now - g.last_seen_ms > timeout_ms) silent.push_back(key);
  }
  for (const std::string& key : silent) {
    DropGroupLocked(key, absl::UnavailableError("no heartbeat within the worker timeout"), true);
  }
  if (now - last_retention_ms_ > 10000) RetentionLocked();
  DispatchLocked();
  UpdateGaugesLocked();
}

}  // namespace magi
