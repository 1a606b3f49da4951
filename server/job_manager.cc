#include "server/job_manager.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
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

// The last event of a finished job and the status its streams end with.
struct FinalEvent {
  GenerateEvent event;
  absl::Status status;
};
FinalEvent FinalEventOf(const JobRecord& rec) {
  FinalEvent f;
  if (rec.state == ::magi::v1::JOB_STATE_SUCCEEDED) {
    f.event.mutable_completed()->set_job_id(rec.job_id);
    *f.event.mutable_completed()->mutable_stats() = rec.stats;
    return f;
  }
  f.status = absl::Status(static_cast<absl::StatusCode>(rec.error_code), rec.error_message);
  if (f.status.ok()) f.status = absl::UnknownError("job failed");
  f.event.mutable_failed()->set_job_id(rec.job_id);
  f.event.mutable_failed()->set_code(static_cast<int>(f.status.code()));
  f.event.mutable_failed()->set_message(std::string(f.status.message()));
  return f;
}

absl::Status NotFound(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job_id: no job '", job_id, "'"));
}

// A live prompt change used from job chunk `from_chunk` on, written into the record's request
// (the submitted prompts kept beside it the first time, for idempotent retries).
void RecordPromptChange(JobRecord& rec, int from_chunk, const std::string& text) {
  if (!rec.submitted_prompts) {
    rec.submitted_prompts.emplace();
    *rec.submitted_prompts->mutable_prompts() = rec.request.prompts();
  }
  (void)ApplyPromptFrom(from_chunk, text, &rec.request);
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(const JobManagerOptions& options,
                                                               ServerMetrics* metrics) {
  if (options.state_dir.empty()) return absl::InvalidArgumentError("--state-dir: required");
  if (options.max_queue < 1) return absl::InvalidArgumentError("--max-queue: must be >= 1");
  std::unique_ptr<JobManager> m(new JobManager(options, metrics));
  MAGI_ASSIGN_OR_RETURN(auto store, JobStore::Open(options.state_dir));
  m->store_ = std::move(store);
  m->feed_ = std::make_unique<JobFeed>(m->store_.get(), options.feed, metrics);
  MAGI_RETURN_IF_ERROR(m->Recover());
  m->tick_thread_ = std::thread([p = m.get()] { p->TickLoop(); });
  return m;
}

JobManager::JobManager(const JobManagerOptions& options, ServerMetrics* metrics)
    : options_(options), metrics_(metrics), catalog_(options.default_model),
      scheduler_(options.max_queue), rate_(options.tenant_submits_per_minute) {
  // The default model's series exist (at 0) from the start.
  if (metrics_) metrics_->TouchModel(catalog_.default_model());
}

std::string JobManager::ModelLabel(const JobRecord& rec) const {
  return rec.request.model().empty() ? catalog_.default_model() : rec.request.model();
}

JobManager::~JobManager() {
  {
    std::lock_guard<std::mutex> lock(tick_mu_);
    stop_ = true;
  }
  tick_cv_.notify_all();
  if (tick_thread_.joinable()) tick_thread_.join();
}

absl::Status JobManager::Recover() {
  // Before any RPC is served: the disk reads need no lock.
  MAGI_ASSIGN_OR_RETURN(auto jobs, store_->LoadUnfinished());
  for (JobRecord& rec : jobs) {
    ActiveJob job;
    job.rec = std::move(rec);
    job.rec.state = ::magi::v1::JOB_STATE_QUEUED;
    job.queued_since_ms = NowMs();
    job.first_chunk_seen = job.rec.chunks_done > 0;
    MAGI_RETURN_IF_ERROR(store_->Update(job.rec));
    MAGI_ASSIGN_OR_RETURN(auto chunks, store_->Chunks(job.rec.job_id));
    std::vector<ChunkRecord> stored;
    for (const ChunkRecord& c : chunks) {
      if (c.index < job.rec.chunks_done) stored.push_back(c);
    }
    if (!stored.empty()) job.frames_done = stored.back().frame_end;
    std::string init;
    if (!stored.empty()) {
      MAGI_ASSIGN_OR_RETURN(auto read, store_->ReadInitSegment(job.rec.job_id));
      init = std::move(read);
    }
    Log(absl::StrCat("recovered job ", job.rec.job_id, " (", job.rec.chunks_done, "/",
                     job.rec.chunks_total, " chunks done)"));
    std::lock_guard<std::mutex> lock(mu_);
    EnqueueLocked(job.rec, /*bypass_capacity=*/true);
    feed_->Open(job.rec.job_id, job.rec.chunks_total, std::move(stored), std::move(init));
    std::string id = job.rec.job_id;
    active_.emplace(id, std::move(job));
  }
  std::lock_guard<std::mutex> lock(mu_);
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

absl::StatusOr<::magi::v1::Job> JobManager::Submit(const std::string& tenant,
                                                   const ::magi::v1::GenerateRequest& request) {
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
  std::lock_guard<std::mutex> order(transition_mu_);
  if (!valid->request().idempotency_key().empty()) {
    auto existing = store_->FindByIdempotencyKey(tenant, valid->request().idempotency_key());
    if (!existing.ok()) {
      CountStoreError("read", "looking up an idempotency key", existing.status());
      return existing.status();
    }
    if (existing->has_value()) {
      // Both requests have every default filled in, so "the same request" is field equality
      // (media bytes included): a retry gets its job, a different request under the key is
      // refused rather than silently answered with another job.
      // A job whose prompts changed live is compared as it was submitted.
      ::magi::v1::GenerateRequest as_submitted = (*existing)->request;
      if ((*existing)->submitted_prompts) *as_submitted.mutable_prompts() = (*existing)->submitted_prompts->prompts();
      if (!google::protobuf::util::MessageDifferencer::Equals(as_submitted, valid->request())) {
        if (metrics_) metrics_->JobsRejected("idempotency_conflict").Increment();
        return absl::AlreadyExistsError(absl::StrCat(
            "idempotency_key: '", valid->request().idempotency_key(), "' was used for job ",
            (*existing)->job_id, " with a different request; use a new key for a new request"));
      }
      std::lock_guard<std::mutex> lock(mu_);
      const JobRecord* mem = MemoryRecordLocked((*existing)->job_id);
      return JobViewLocked(mem ? *mem : **existing);
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (scheduler_.full()) {
      if (metrics_) metrics_->JobsRejected("queue_full").Increment();
      return absl::ResourceExhaustedError(absl::StrCat("queue is full: ", scheduler_.size(),
                                                       " jobs waiting (--max-queue ",
                                                       scheduler_.capacity(), "); retry later"));
    }
    if (options_.tenant_max_queued > 0) {
      size_t queued = 0;
      for (const auto& [id, job] : active_) {
        if (job.group.empty() && job.rec.tenant == tenant) ++queued;
      }
      if (queued >= options_.tenant_max_queued) {
        if (metrics_) metrics_->JobsRejected("tenant_quota").Increment();
        return absl::ResourceExhaustedError(absl::StrCat(
            "tenant quota: tenant '", tenant.empty() ? "anonymous" : tenant, "' has ", queued,
            " jobs queued (--tenant-max-queued ", options_.tenant_max_queued,
            "); wait for one to start or cancel one"));
      }
    }
    int64_t retry_ms = 0;
    if (!rate_.TryTake(tenant, NowMs(), &retry_ms)) {
      if (metrics_) metrics_->JobsRejected("tenant_rate").Increment();
      return absl::ResourceExhaustedError(absl::StrCat(
          "tenant rate: tenant '", tenant.empty() ? "anonymous" : tenant, "' submitted more than ",
          rate_.per_minute(), " jobs in a minute (--tenant-submits-per-minute ", rate_.per_minute(),
          "); retry in ", (retry_ms + 999) / 1000, " s"));
    }
  }
  ActiveJob job;
  job.rec.job_id = NewJobId();
  job.rec.tenant = tenant;
  job.rec.state = ::magi::v1::JOB_STATE_QUEUED;
  job.rec.request = valid->request();
  job.rec.created_ms = NowMs();
  job.rec.chunks_total = valid->chunks_total();
  job.queued_since_ms = job.rec.created_ms;
  if (auto s = store_->Insert(&job.rec); !s.ok()) {  // accepted = persisted
    CountStoreError("insert", absl::StrCat("persisting new job ", job.rec.job_id), s);
    return s;
  }
  ::magi::v1::Job view;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Transitions are serialised and only they add to the queue: it still has room.
    if (auto s = scheduler_.Enqueue(QueuedJob{job.rec.job_id, job.rec.request.priority(), job.rec.seq,
                                              job.rec.request.model(), job.rec.request.width(),
                                              job.rec.request.height()});
        !s.ok()) {
      return s;
    }
    feed_->Open(job.rec.job_id, job.rec.chunks_total, {}, "");
    if (metrics_) metrics_->JobsSubmitted(ModelLabel(job.rec)).Increment();
    std::string id = job.rec.job_id;
    active_.emplace(id, std::move(job));
    view = JobViewLocked(active_.at(id).rec);
  }
  Dispatch();
  std::lock_guard<std::mutex> lock(mu_);
  UpdateGaugesLocked();
  return view;
}

absl::Status JobManager::Watch(const std::string& tenant, const std::string& job_id, int from_chunk,
                               std::shared_ptr<JobSubscriber> subscriber, bool accepted_first) {
  MAGI_RETURN_IF_ERROR(CheckOwner(tenant, job_id));
  if (from_chunk < 0) {
    return absl::InvalidArgumentError(absl::StrCat("from_chunk: ", from_chunk, " is negative; allowed >= 0"));
  }
  const JobSubscriber* key = subscriber.get();
  std::optional<GenerateEvent> first;
  std::optional<JobRecord> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (accepted_first) {
      first.emplace();
      first->mutable_accepted()->set_job_id(job_id);
      first->mutable_accepted()->set_queue_position(scheduler_.Position(job_id));
    }
    auto it = active_.find(job_id);
    if (it != active_.end()) {
      // Under the state lock, so no event of the job is published between the snapshot and
      // the attach; the stored chunks are read by Replay below, without it.
      if (auto s = feed_->Attach(job_id, from_chunk, std::move(subscriber), std::move(first),
                                 ProgressEventLocked(it->second));
          !s.ok()) {
        return s;
      }
    } else if (auto u = unwritten_.find(job_id); u != unwritten_.end()) {
      finished = u->second;
    }
  }
  if (subscriber) {  // not attached above: the job is finished (its final record is written)
    if (!finished) {
      auto got = store_->Get(job_id);
      if (!got.ok()) {
        CountStoreError("read", absl::StrCat("reading job ", job_id), got.status());
        return got.status();
      }
      if (!got->has_value()) return NotFound(job_id);
      finished = std::move(**got);
    }
    if (!finished->finished()) {
      return absl::InternalError(absl::StrCat("job ", job_id, " is ", ::magi::v1::JobState_Name(finished->state),
                                              " in the store but not active in the server"));
    }
    auto chunks = store_->Chunks(job_id);
    if (!chunks.ok()) {
      CountStoreError("read", absl::StrCat("reading the chunks of job ", job_id), chunks.status());
      return chunks.status();
    }
    std::vector<ChunkRecord> stored;
    for (const ChunkRecord& c : *chunks) {
      if (c.index < finished->chunks_done) stored.push_back(c);
    }
    FinalEvent f = FinalEventOf(*finished);
    if (auto s = feed_->AttachFinished(job_id, finished->chunks_total, std::move(stored), std::move(f.event),
                                       std::move(f.status), from_chunk, std::move(subscriber), std::move(first));
        !s.ok()) {
      return s;
    }
  }
  feed_->Replay(key);
  return absl::OkStatus();
}

void JobManager::Unwatch(const JobSubscriber* subscriber) { feed_->Detach(subscriber); }

absl::StatusOr<::magi::v1::Job> JobManager::Cancel(const std::string& tenant, const std::string& job_id) {
  MAGI_RETURN_IF_ERROR(CheckOwner(tenant, job_id));
  std::lock_guard<std::mutex> order(transition_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = active_.find(job_id);
    if (it == active_.end()) {
      auto u = unwritten_.find(job_id);
      if (u != unwritten_.end()) return u->second.ToJob();  // already finished
    } else {
      ActiveJob& job = it->second;
      if (!job.group.empty()) {
        registry_.Cancel(job.group, job_id, job.rec.attempts, "cancelled by client");
      } else {
        scheduler_.Remove(job_id);
      }
    }
  }
  if (auto rec = Finish(job_id, ::magi::v1::JOB_STATE_CANCELLED, absl::CancelledError("job cancelled by client"))) {
    return rec->ToJob();
  }
  auto got = store_->Get(job_id);
  if (!got.ok()) {
    CountStoreError("read", absl::StrCat("reading job ", job_id), got.status());
    return got.status();
  }
  if (!got->has_value()) return NotFound(job_id);
  return (*got)->ToJob();  // already finished: cancelling is a no-op
}

absl::Status JobManager::DeleteJob(const std::string& tenant, const std::string& job_id) {
  MAGI_RETURN_IF_ERROR(Cancel(tenant, job_id).status());  // ends an active job; a no-op for a finished one
  std::lock_guard<std::mutex> order(transition_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    unwritten_.erase(job_id);  // the ticker must not write it back after the delete
  }
  absl::Status s = store_->Delete(job_id);
  if (!s.ok()) CountStoreError("delete", absl::StrCat("deleting job ", job_id), s);
  return s;
}

void JobManager::UpdatePrompt(const std::string& tenant, const std::string& job_id, const std::string& text,
                              PromptUpdateDone done) {
  if (absl::Status s = CheckOwner(tenant, job_id); !s.ok()) return done(s);
  absl::StatusOr<PromptUpdateResult> answer = absl::InternalError("unanswered");
  {
    std::lock_guard<std::mutex> order(transition_mu_);
    JobRecord changed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = active_.find(job_id);
      if (it == active_.end()) {
        answer = absl::FailedPreconditionError(
            absl::StrCat("job ", job_id, " has ended; its prompts can no longer change"));
      } else if (absl::Status s = CheckPromptUpdate(it->second.rec.request, text, options_.limits.job); !s.ok()) {
        answer = s;
      } else if (!it->second.group.empty()) {
        // Running: its group uses it from the next chunk that starts and answers.
        ActiveJob& job = it->second;
        const int64_t id = job.next_update_id++;
        job.pending_prompts.push_back({id, text, std::move(done)});
        registry_.SendPromptUpdate(job.group, job_id, job.rec.attempts, id, text);
        return;
      } else {
        // Queued: no chunk of it is being made; it is used from the next one to make.
        ActiveJob& job = it->second;
        RecordPromptChange(job.rec, job.rec.chunks_done, text);
        changed = job.rec;
        answer = PromptUpdateResult{job.rec.chunks_done, JobViewLocked(job.rec)};
      }
    }
    if (!changed.job_id.empty()) {
      if (absl::Status s = Persist(changed, "update"); !s.ok()) {
        answer = absl::Status(s.code(), absl::StrCat("recording the prompt change: ", s.message()));
      }
    }
  }
  done(std::move(answer));
}

void JobManager::AnswerPromptsLocked(ActiveJob& job, int64_t up_to, const absl::StatusOr<PromptUpdateResult>& result) {
  auto& pending = job.pending_prompts;
  auto it = pending.begin();
  for (; it != pending.end() && it->update_id <= up_to; ++it) {
    absl::StatusOr<PromptUpdateResult> r =
        it->update_id == up_to ? result
                               : absl::StatusOr<PromptUpdateResult>(absl::AbortedError(absl::StrCat(
                                     "replaced by a later prompt change of job ", job.rec.job_id,
                                     " before its next chunk started")));
    prompt_answers_.push_back([done = std::move(it->done), r = std::move(r)]() mutable { done(std::move(r)); });
  }
  pending.erase(pending.begin(), it);
}

void JobManager::FlushPromptAnswers() {
  std::vector<std::function<void()>> answers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    answers.swap(prompt_answers_);
  }
  for (auto& a : answers) a();
}

void JobManager::HandlePromptApplied(const std::string& key, const ::magi::internal::v1::PromptApplied& a) {
  JobRecord changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!registry_.Touch(key, NowMs())) return;
    ActiveJob* job = JobForLocked(key, a.job_id(), a.attempt());
    if (!job) return;
    if (a.from_chunk() < 0) {
      AnswerPromptsLocked(*job, a.update_id(),
                          absl::FailedPreconditionError(absl::StrCat(
                              "every chunk of job ", a.job_id(), " had started denoising; the prompt was not used")));
    } else if (a.from_chunk() < job->rec.chunks_done || a.from_chunk() >= job->rec.chunks_total || a.text().empty()) {
      Log(absl::StrCat("group ", key, " used a prompt change of job ", a.job_id(), " from chunk ", a.from_chunk(),
                       " (chunks done ", job->rec.chunks_done, " of ", job->rec.chunks_total, "); ignored"));
      AnswerPromptsLocked(*job, a.update_id(),
                          absl::InternalError("the worker group answered the prompt change with a bad chunk"));
    } else {
      RecordPromptChange(job->rec, a.from_chunk(), a.text());
      changed = job->rec;
      AnswerPromptsLocked(*job, a.update_id(), PromptUpdateResult{a.from_chunk(), JobViewLocked(job->rec)});
    }
  }
  // Not a state transition: a refused write is logged and counted, and the request is
  // written again with the job's next record.
  if (!changed.job_id.empty()) (void)Persist(changed, "update");
  FlushPromptAnswers();
}

absl::StatusOr<::magi::v1::Job> JobManager::GetJob(const std::string& tenant, const std::string& job_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (const JobRecord* mem = MemoryRecordLocked(job_id)) {
      if (mem->tenant != tenant) return NotFound(job_id);
      return JobViewLocked(*mem);
    }
  }
  // Not active: finished, and its final record is in the store (written before the job left
  // active_), or unknown.
  auto got = store_->Get(job_id);
  if (!got.ok()) {
    CountStoreError("read", absl::StrCat("reading job ", job_id), got.status());
    return got.status();
  }
  if (!got->has_value() || (*got)->tenant != tenant) return NotFound(job_id);
  return (*got)->ToJob();
}

absl::Status JobManager::CheckOwner(const std::string& tenant, const std::string& job_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (const JobRecord* mem = MemoryRecordLocked(job_id)) {
      return mem->tenant == tenant ? absl::OkStatus() : NotFound(job_id);
    }
  }
  auto got = store_->Get(job_id);
  if (!got.ok()) {
    CountStoreError("read", absl::StrCat("reading job ", job_id), got.status());
    return got.status();
  }
  if (!got->has_value() || (*got)->tenant != tenant) return NotFound(job_id);
  return absl::OkStatus();
}

absl::StatusOr<::magi::v1::ListJobsResponse> JobManager::ListJobs(
    const std::string& tenant, const ::magi::v1::ListJobsRequest& request) {
  int page_size = request.page_size() == 0 ? 50 : request.page_size();
  if (page_size < 1 || page_size > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: ", request.page_size(), " is out of range; allowed [0, 1000] (0 = 50)"));
  }
  if (!::magi::v1::JobState_IsValid(request.state())) {
    return absl::InvalidArgumentError(absl::StrCat("state: ", request.state(), " is not a JobState"));
  }
  MAGI_ASSIGN_OR_RETURN(auto page, store_->List(tenant, request.state(), page_size, request.page_token()));
  std::lock_guard<std::mutex> lock(mu_);
  ::magi::v1::ListJobsResponse out;
  for (const JobRecord& rec : page.jobs) {
    const JobRecord* mem = MemoryRecordLocked(rec.job_id);
    *out.add_jobs() = JobViewLocked(mem ? *mem : rec);
  }
  out.set_next_page_token(page.next_page_token);
  return out;
}

absl::StatusOr<std::string> JobManager::FinalVideoPath(const std::string& tenant, const std::string& job_id) {
  MAGI_ASSIGN_OR_RETURN(auto job, GetJob(tenant, job_id));
  if (job.state() != ::magi::v1::JOB_STATE_SUCCEEDED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " is ", ::magi::v1::JobState_Name(job.state()),
        "; the video exists once it succeeded (use Watch to stream chunks)"));
  }
  return store_->VideoPath(job_id);
}

// ---------------------------------------------------------------------------------------
// Worker groups

absl::StatusOr<std::string> JobManager::RegisterGroup(
    const ::magi::internal::v1::Register& reg, std::shared_ptr<WorkerGroupLink> link) {
  MAGI_RETURN_IF_ERROR(GroupRegistry::Validate(reg));
  std::lock_guard<std::mutex> order(transition_mu_);
  std::string key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto s = registry_.CheckModels(reg); !s.ok()) {
      Log(absl::StrCat("worker group ", reg.group_id(), " refused: ", s.message()));
      return s;
    }
    key = registry_.Add(reg, std::move(link), options_.heartbeat_interval_ms, NowMs());
  }
  std::string models;
  for (const auto& m : reg.models()) {
    absl::StrAppend(&models, models.empty() ? "" : "; ", m.name(), ": special tokens ",
                    m.special_tokens().empty() ? std::string("none") : absl::StrJoin(m.special_tokens(), ", "));
  }
  Log(absl::StrCat("worker group ", key, " registered (", reg.runner(), ", ", reg.slots(), " slot(s); ", models, ")"));
  Dispatch();
  std::lock_guard<std::mutex> lock(mu_);
  UpdateGaugesLocked();
  return key;
}

void JobManager::OnWorkerMessage(const std::string& key, const WorkerMessage& msg) {
  switch (msg.msg_case()) {
    case WorkerMessage::kHeartbeat:
    case WorkerMessage::kRegister: {
      std::lock_guard<std::mutex> lock(mu_);
      registry_.Touch(key, NowMs());
      return;
    }
    case WorkerMessage::kProgress: {
      const auto& p = msg.progress();
      std::lock_guard<std::mutex> lock(mu_);
      if (!registry_.Touch(key, NowMs())) return;  // already dropped
      if (metrics_ && p.step_seconds() > 0) metrics_->step_seconds->Observe(p.step_seconds());
      ActiveJob* job = JobForLocked(key, p.job_id(), p.attempt());
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
      feed_->PublishProgress(p.job_id(), e);
      return;
    }
    case WorkerMessage::kChunk: {
      std::lock_guard<std::mutex> order(transition_mu_);
      HandleChunk(key, msg.chunk());
      return;
    }
    case WorkerMessage::kDone: {
      std::lock_guard<std::mutex> order(transition_mu_);
      HandleDone(key, msg.done());
      return;
    }
    case WorkerMessage::kPromptApplied: {
      std::lock_guard<std::mutex> order(transition_mu_);
      HandlePromptApplied(key, msg.prompt_applied());
      return;
    }
    case WorkerMessage::MSG_NOT_SET:
      return;
  }
}

void JobManager::HandleChunk(const std::string& key, const ::magi::internal::v1::ChunkReady& c) {
  bool bad = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!registry_.Touch(key, NowMs())) return;  // already dropped
    ActiveJob* job = JobForLocked(key, c.job_id(), c.attempt());
    if (!job) return;
    if (c.index() < job->rec.chunks_done) {
      // The current attempt started after this chunk: the worker recomputed it for nothing.
      Log(absl::StrCat("job ", c.job_id(), " attempt ", c.attempt(), ": group ", key, " sent chunk ", c.index(),
                       " again (already stored; the attempt started at a later chunk); dropped"));
      return;
    }
    bad = c.index() != job->rec.chunks_done || c.index() >= job->rec.chunks_total ||
          (c.index() == 0 && c.init_segment().empty()) || c.fragment().empty();
    if (bad) {
      Log(absl::StrCat("group ", key, " sent a bad chunk ", c.index(), " for job ", c.job_id(),
                       " (expected ", job->rec.chunks_done, "); dropping the group"));
    }
  }
  if (bad) {
    DropGroup(key, absl::InvalidArgumentError("protocol violation: bad chunk"), /*close_link=*/true);
    return;
  }
  const ChunkRecord rec{c.index(), c.frame_begin(), c.frame_end(), static_cast<int64_t>(c.fragment().size())};
  if (absl::Status s = store_->PutChunk(c.job_id(), rec, c.init_segment(), c.fragment()); !s.ok()) {
    CountStoreError("put_chunk", absl::StrCat("storing chunk ", c.index(), " of ", c.job_id()), s);
    {
      std::lock_guard<std::mutex> lock(mu_);
      registry_.Cancel(key, c.job_id(), c.attempt(), "server could not store the chunk");
    }
    Finish(c.job_id(), ::magi::v1::JOB_STATE_FAILED,
           absl::Status(s.code(), absl::StrCat("storing chunk ", c.index(), ": ", s.message())));
    return;
  }
  std::optional<JobRecord> with_ttfc;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ActiveJob* job = JobForLocked(key, c.job_id(), c.attempt());
    if (!job) return;  // cannot happen: transitions are serialised
    job->rec.chunks_done = c.index() + 1;
    job->frames_done = c.frame_end();
    if (metrics_) {
      metrics_->chunks_emitted->Increment();
      metrics_->chunk_bytes->Increment(static_cast<double>(c.fragment().size()));
      if (c.ready_unix_ns() > 0) {
        metrics_->chunk_delivery_lag_seconds->Observe(std::max<int64_t>(0, NowNs() - c.ready_unix_ns()) / 1e9);
      }
    }
    if (!job->first_chunk_seen) {
      job->first_chunk_seen = true;
      double ttfc = (NowMs() - job->rec.created_ms) / 1000.0;
      job->rec.stats.set_time_to_first_chunk_seconds(ttfc);
      if (metrics_) metrics_->time_to_first_chunk_seconds->Observe(ttfc);
      with_ttfc = job->rec;
    }
    feed_->PublishChunk(c.job_id(), rec, c.init_segment(), c.fragment());
  }
  // Not a state transition: a failed write is logged and counted by Persist, and the stats
  // are written again with the job's final record.
  if (with_ttfc && !Persist(*with_ttfc, "update").ok()) return;
}

void JobManager::HandleDone(const std::string& key, const ::magi::internal::v1::JobDone& d) {
  bool ours = false;
  int chunks_done = 0, chunks_total = 0;
  // Every way out: the group's slot may be free, so assign what is queued.
  auto reschedule = [this] {
    Dispatch();
    std::lock_guard<std::mutex> lock(mu_);
    UpdateGaugesLocked();
  };
  if (d.code() == static_cast<int>(absl::StatusCode::kUnavailable)) {
    // UNAVAILABLE is the group saying it could not run the job (a rank died, a collective
    // broke), not that the job is bad: the group is dropped (its link closed; a healthy
    // process dials again and registers anew) and the job re-queued from its last chunk like
    // any lost group's, counted against --max_attempts.
    {
      std::lock_guard<std::mutex> lock(mu_);
      ours = JobForLocked(key, d.job_id(), d.attempt()) != nullptr;
    }
    if (ours) {
      DropGroup(key,
                absl::UnavailableError(absl::StrCat("it could not run job ", d.job_id(), ": ", d.message())),
                /*close_link=*/true);
      return reschedule();
    }
  }
  std::vector<JobRecord> handed_back;
  {
    std::lock_guard<std::mutex> lock(mu_);
    GroupRegistry::Group* g = registry_.Find(key);
    if (!g) return;  // already dropped
    g->last_seen_ms = NowMs();
    g->busy.erase(d.job_id());
    ActiveJob* job = d.handed_back() ? JobForLocked(key, d.job_id(), d.attempt()) : nullptr;
    if (job != nullptr) {
      // A draining group stopped it after its last sent chunk: back to the queue at once,
      // this attempt not counted, and the group gets nothing new.
      g->draining = true;
      job->group.clear();
      job->handed_back += 1;
      handed_back.push_back(RequeueLocked(*job, absl::StrCat("handed back by draining group ", key)));
    }
  }
  if (!handed_back.empty()) {
    PersistRequeued(handed_back, absl::StrCat("after worker group ", key, " handed it back"));
    return reschedule();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ActiveJob* job = JobForLocked(key, d.job_id(), d.attempt())) {
      ours = true;
      chunks_done = job->rec.chunks_done;
      chunks_total = job->rec.chunks_total;
    }
  }
  if (ours && d.code() != 0) {
    absl::Status s(static_cast<absl::StatusCode>(d.code()), d.message());
    Finish(d.job_id(), absl::IsCancelled(s) ? ::magi::v1::JOB_STATE_CANCELLED : ::magi::v1::JOB_STATE_FAILED, s);
  } else if (ours && chunks_done < chunks_total) {
    Finish(d.job_id(), ::magi::v1::JOB_STATE_FAILED,
           absl::InternalError(absl::StrCat("worker finished after ", chunks_done, " of ", chunks_total, " chunks")));
  } else if (ours) {
    auto bytes = store_->WriteFinalVideo(d.job_id(), chunks_done);
    if (!bytes.ok()) {
      CountStoreError("final_video", absl::StrCat("writing the video of ", d.job_id()), bytes.status());
      Finish(d.job_id(), ::magi::v1::JOB_STATE_FAILED, bytes.status());
    } else {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (auto it = active_.find(d.job_id()); it != active_.end()) it->second.rec.video_bytes = *bytes;
      }
      Finish(d.job_id(), ::magi::v1::JOB_STATE_SUCCEEDED, absl::OkStatus());
    }
  }
  reschedule();
}

void JobManager::OnGroupLost(const std::string& key, const absl::Status& why) {
  std::lock_guard<std::mutex> order(transition_mu_);
  DropGroup(key, why, /*close_link=*/false);
}

JobRecord JobManager::RequeueLocked(ActiveJob& job, const std::string& why) {
  if (!job.pending_prompts.empty()) {
    // Unanswered prompt changes: the newest is used from the chunk the next attempt starts at.
    const ActiveJob::PendingPrompt& newest = job.pending_prompts.back();
    RecordPromptChange(job.rec, job.rec.chunks_done, newest.text);
    AnswerPromptsLocked(job, newest.update_id, PromptUpdateResult{job.rec.chunks_done, JobViewLocked(job.rec)});
  }
  job.rec.state = ::magi::v1::JOB_STATE_QUEUED;
  job.queued_since_ms = NowMs();
  EnqueueLocked(job.rec, /*bypass_capacity=*/true);
  if (metrics_) metrics_->JobsRequeued(ModelLabel(job.rec)).Increment();
  Log(absl::StrCat("job ", job.rec.job_id, " re-queued at chunk ", job.rec.chunks_done, " (", why, ")"));
  return job.rec;
}

void JobManager::PersistRequeued(const std::vector<JobRecord>& requeued, const std::string& why) {
  for (const JobRecord& rec : requeued) {
    if (absl::Status s = Persist(rec, "update"); !s.ok()) {
      Finish(rec.job_id, ::magi::v1::JOB_STATE_FAILED,
             absl::Status(s.code(), absl::StrCat("re-queueing ", why, ": the job store refused the write: ",
                                                 s.message())));
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = active_.find(rec.job_id); it != active_.end()) {
      feed_->PublishProgress(rec.job_id, ProgressEventLocked(it->second));
    }
  }
  FlushPromptAnswers();
}

void JobManager::DropGroup(const std::string& key, const absl::Status& why, bool close_link) {
  std::vector<JobRecord> requeued;
  std::vector<std::pair<std::string, int>> exhausted;  // job id, attempts made
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<GroupRegistry::Group> group = registry_.Remove(key);
    if (!group) return;
    Log(absl::StrCat("worker group ", key, " lost: ", why.ToString()));
    for (const std::string& id : group->busy) {
      auto it = active_.find(id);
      if (it == active_.end() || it->second.group != key) continue;
      ActiveJob& job = it->second;
      job.group.clear();
      if (job.rec.attempts - job.handed_back >= options_.max_attempts) {
        // A job that takes its group down every time must not hold the front of the queue
        // forever: it fails with the last attempt's error (Finish, below, outside mu_).
        exhausted.emplace_back(id, job.rec.attempts);
        continue;
      }
      requeued.push_back(RequeueLocked(job, absl::StrCat("worker group ", key, " lost")));
    }
    // Closed with the group's removal, so nobody sees it gone from the registry but open.
    if (close_link) group->link->Close(why);
  }
  for (const auto& [id, attempts] : exhausted) {
    Finish(id, ::magi::v1::JOB_STATE_FAILED,
           absl::Status(why.code() == absl::StatusCode::kOk ? absl::StatusCode::kUnavailable : why.code(),
                        absl::StrCat("gave up after ", attempts, " attempts (--max_attempts ",
                                     options_.max_attempts, "); last attempt: worker group ", key,
                                     " was lost: ", why.message())));
  }
  PersistRequeued(requeued, absl::StrCat("after worker group ", key, " was lost"));
  Dispatch();
  std::lock_guard<std::mutex> lock(mu_);
  UpdateGaugesLocked();
}

// ---------------------------------------------------------------------------------------
// Scheduling and transitions

void JobManager::Dispatch() {
  while (!draining_) {
    std::optional<Assignment> a;
    {
      std::lock_guard<std::mutex> lock(mu_);
      a = NextAssignmentLocked();
    }
    if (!a) return;
    if (!a->spec.ok()) {
      Finish(a->job_id, ::magi::v1::JOB_STATE_FAILED, a->spec.status());
      continue;
    }
    if (absl::Status s = Persist(a->rec, "update"); !s.ok()) {
      Finish(a->job_id, ::magi::v1::JOB_STATE_FAILED,
             absl::Status(s.code(), absl::StrCat("assigning to ", a->group,
                                                 ": the job store refused the write: ", s.message())));
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    GroupRegistry::Group* group = registry_.Find(a->group);
    auto it = active_.find(a->job_id);
    if (!group || it == active_.end()) continue;  // cannot happen: transitions are serialised
    ActiveJob& job = it->second;
    Log(absl::StrCat("job ", a->job_id, " attempt ", job.rec.attempts, " -> ", a->group,
                     " from chunk ", job.rec.chunks_done));
    registry_.Assign(*group, a->job_id, job.rec.attempts, *std::move(a->spec), job.rec.chunks_done);
    feed_->PublishProgress(a->job_id, ProgressEventLocked(job));
  }
}

std::optional<JobManager::Assignment> JobManager::NextAssignmentLocked() {
  for (auto& [key, group] : registry_.groups()) {
    while (group.has_free_slot() && scheduler_.size() > 0) {
      auto next = scheduler_.PopFirst(
          [&group = group](const QueuedJob& q) { return group.Serves(q.model, q.width, q.height); });
      if (!next) break;
      auto it = active_.find(next->job_id);
      if (it == active_.end()) continue;
      ActiveJob& job = it->second;
      Assignment a;
      a.job_id = next->job_id;
      a.group = key;
      // The stored request has every default filled in, so the group's declaration of the
      // model rebuilds the edge's JobSpec; a group that declares the model otherwise fails
      // the job visibly rather than running another geometry.
      absl::StatusOr<JobSpec> spec = absl::NotFoundError("the group does not declare the job's model");
      for (const auto& m : group.info.models()) {
        if (m.name() == job.rec.request.model()) spec = BuildJobSpec(job.rec.request, m);
      }
      if (spec.ok() && spec->chunks_total() != job.rec.chunks_total) {
        spec = absl::FailedPreconditionError(absl::StrCat(
            "worker group ", key, " declares model '", job.rec.request.model(), "' with ",
            spec->chunks_total(), " chunks for this job; it was accepted with ", job.rec.chunks_total));
      }
      if (!spec.ok()) {
        a.spec = absl::FailedPreconditionError(absl::StrCat("assigning to ", key, ": ", spec.status().message()));
        return a;
      }
      const int64_t now = NowMs();
      job.group = key;
      job.assigned_ms = now;
      job.rec.state = ::magi::v1::JOB_STATE_RUNNING;
      job.rec.attempts += 1;
      if (job.rec.started_ms == 0) {
        job.rec.started_ms = now;
        job.rec.stats.set_queue_wait_seconds((now - job.rec.created_ms) / 1000.0);
      }
      if (metrics_) metrics_->queue_wait_seconds->Observe((now - job.queued_since_ms) / 1000.0);
      a.spec = *std::move(spec);
      a.rec = job.rec;
      return a;
    }
  }
  return std::nullopt;
}

std::optional<JobRecord> JobManager::Finish(const std::string& job_id, JobState state, const absl::Status& status) {
  JobRecord rec;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = active_.find(job_id);
    if (it == active_.end()) return std::nullopt;
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
    rec = job.rec;
    if (!job.pending_prompts.empty()) {
      AnswerPromptsLocked(job, job.pending_prompts.back().update_id,
                          absl::FailedPreconditionError(absl::StrCat("job ", job_id, " ended (",
                                                                     ::magi::v1::JobState_Name(state),
                                                                     ") before its next chunk started")));
    }
  }
  // Written before anyone hears of the end; if the store refuses, the job is still served
  // from memory (unwritten_) and the write is retried by the ticker.
  const bool written = Persist(rec, "update").ok();
  FinalEvent final = FinalEventOf(rec);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!written) unwritten_[job_id] = rec;
    if (metrics_) {
      metrics_->JobsFinished(OutcomeOf(state, status), ModelLabel(rec)).Increment();
      if (state == ::magi::v1::JOB_STATE_SUCCEEDED) {
        metrics_->job_latency_seconds->Observe(rec.stats.total_seconds());
      }
    }
    feed_->Finish(job_id, final.event, final.status);
    Log(absl::StrCat("job ", job_id, " ", ::magi::v1::JobState_Name(state),
                     status.ok() ? "" : absl::StrCat(": ", status.ToString())));
    active_.erase(job_id);
    idle_cv_.notify_all();
    UpdateGaugesLocked();
  }
  FlushPromptAnswers();
  RunRetention();
  return rec;
}

void JobManager::RunRetention() {
  const int64_t now = NowMs();
  const int64_t before =
      options_.retention_hours > 0 ? now - static_cast<int64_t>(options_.retention_hours * 3600e3) : 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_retention_ms_ = now;
  }
  auto expired = store_->ExpiredJobs(options_.retention_jobs, before);
  if (!expired.ok()) {
    CountStoreError("read", "listing expired jobs", expired.status());
    return;
  }
  for (const std::string& id : *expired) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (MemoryRecordLocked(id)) continue;
    }
    if (feed_->HasWatchers(id)) continue;  // deleted once nobody replays it
    if (absl::Status s = store_->Delete(id); !s.ok()) {
      CountStoreError("delete", absl::StrCat("deleting expired job ", id), s);
    }
  }
}

absl::Status JobManager::Persist(const JobRecord& rec, const char* op) {
  absl::Status s = store_->Update(rec);
  if (!s.ok()) {
    CountStoreError(op, absl::StrCat("writing job ", rec.job_id, " (", ::magi::v1::JobState_Name(rec.state), ")"), s);
  }
  return s;
}

void JobManager::CountStoreError(const char* op, const std::string& what, const absl::Status& s) {
  Log(absl::StrCat("job store: ", what, ": ", s.ToString()));
  if (metrics_) metrics_->StoreErrors(op).Increment();
}

JobManager::ActiveJob* JobManager::JobForLocked(const std::string& key, const std::string& job_id, int attempt) {
  auto it = active_.find(job_id);
  if (it == active_.end() || it->second.group != key || it->second.rec.attempts != attempt) return nullptr;
  return &it->second;
}

const JobRecord* JobManager::MemoryRecordLocked(const std::string& job_id) const {
  if (auto it = active_.find(job_id); it != active_.end()) return &it->second.rec;
  if (auto it = unwritten_.find(job_id); it != unwritten_.end()) return &it->second;
  return nullptr;
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

void JobManager::EnqueueLocked(const JobRecord& rec, bool bypass_capacity) {
  QueuedJob q{rec.job_id, rec.request.priority(), rec.seq, rec.request.model(),
              rec.request.width(), rec.request.height()};
  absl::Status s = scheduler_.Enqueue(q, bypass_capacity);
  // AlreadyExists: it is queued, which is what we want; nothing else can fail with a bypass.
  if (!s.ok() && !absl::IsAlreadyExists(s)) Log(absl::StrCat("queueing job ", rec.job_id, ": ", s.ToString()));
}

int JobManager::RunningLocked() const {
  int running = 0;
  for (const auto& [id, job] : active_) running += job.group.empty() ? 0 : 1;
  return running;
}

void JobManager::UpdateGaugesLocked() {
  if (!metrics_) return;
  std::map<std::string, int> queued, running;
  for (const auto& [id, job] : active_) {
    if (!job.group.empty()) running[ModelLabel(job.rec)] += 1;
    else if (scheduler_.Contains(id)) queued[ModelLabel(job.rec)] += 1;
  }
  metrics_->SetJobGauges(queued, running);
  metrics_->worker_groups_up->Set(static_cast<double>(registry_.size()));
}

// ---------------------------------------------------------------------------------------
// Operations

void JobManager::StartDraining() {
  draining_ = true;
  Log("draining: admission stopped");
}

int JobManager::running_jobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return RunningLocked();
}

int JobManager::queued_jobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(scheduler_.size());
}

int JobManager::groups_up() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(registry_.size());
}

bool JobManager::WaitForNoRunningJobs(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout), [&] { return RunningLocked() == 0; });
}

void JobManager::CloseAllStreams(const absl::Status& status) {
  feed_->CloseAll(status);
  {
    std::lock_guard<std::mutex> lock(mu_);
    registry_.CloseAll(status);
    for (auto& [id, job] : active_) {
      if (job.pending_prompts.empty()) continue;
      AnswerPromptsLocked(job, job.pending_prompts.back().update_id,
                          status.ok() ? absl::UnavailableError("the server is shutting down") : status);
    }
  }
  FlushPromptAnswers();
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
  FlushPromptAnswers();  // answers queued on a path that did not flush them
  std::lock_guard<std::mutex> order(transition_mu_);
  const int64_t now = NowMs();
  std::vector<std::pair<std::string, absl::Status>> late;
  std::vector<std::string> silent;
  std::vector<JobRecord> unwritten;
  bool retention_due = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, job] : active_) {
      const int64_t d = job.rec.request.deadline_unix_ms();
      if (d <= 0 || now < d) continue;
      if (!job.group.empty()) registry_.Cancel(job.group, id, job.rec.attempts, "deadline exceeded");
      late.emplace_back(id, absl::DeadlineExceededError(absl::StrCat(
                                "deadline_unix_ms ", d, " passed after ", job.rec.chunks_done, " of ",
                                job.rec.chunks_total, " chunks")));
    }
    silent = registry_.Silent(now, static_cast<int64_t>(options_.worker_timeout_seconds * 1000));
    retention_due = now - last_retention_ms_ > 10000;
    if (retention_due) {
      for (const auto& [id, rec] : unwritten_) unwritten.push_back(rec);
    }
  }
  for (const auto& [id, why] : late) Finish(id, ::magi::v1::JOB_STATE_FAILED, why);
  for (const std::string& key : silent) {
    DropGroup(key, absl::UnavailableError("no heartbeat within the worker timeout"), /*close_link=*/true);
  }
  if (retention_due) {
    for (const JobRecord& rec : unwritten) {
      if (!Persist(rec, "update").ok()) continue;
      std::lock_guard<std::mutex> lock(mu_);
      unwritten_.erase(rec.job_id);
    }
    RunRetention();
  }
  Dispatch();
  std::lock_guard<std::mutex> lock(mu_);
  UpdateGaugesLocked();
}

}  // namespace magi
