// JobManager with fake worker links and subscribers: assignment, chunk storage and
// streaming, re-queue + resume when a group is lost, stale and bad worker messages,
// deadlines, cancellation and restart recovery -- without gRPC.
#include "server/job_manager.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "jobspec/builtin_models.h"

#include <filesystem>
#include <mutex>

namespace magi {
namespace {

namespace fs = std::filesystem;
using ::magi::internal::v1::ServerMessage;
using ::magi::internal::v1::WorkerMessage;

class FakeLink final : public WorkerGroupLink {
 public:
  void Send(const ServerMessage& m) override {
    std::lock_guard<std::mutex> lock(mu);
    sent.push_back(m);
  }
  void Close(const absl::Status& s) override {
    std::lock_guard<std::mutex> lock(mu);
    closed = s;
    was_closed = true;
  }
  std::vector<ServerMessage> Assignments() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<ServerMessage> out;
    for (auto& m : sent) if (m.has_assign()) out.push_back(m);
    return out;
  }
  int Cancels() {
    std::lock_guard<std::mutex> lock(mu);
    int n = 0;
    for (auto& m : sent) n += m.has_cancel();
    return n;
  }
  std::mutex mu;
  std::vector<ServerMessage> sent;
  absl::Status closed;
  bool was_closed = false;
};

class FakeSubscriber final : public JobSubscriber {
 public:
  void OnEvent(const ::magi::v1::GenerateEvent& e) override { events.push_back(e); }
  void OnClose(const absl::Status& s) override {
    closed = true;
    status = s;
  }
  std::vector<int> Chunks() const {
    std::vector<int> out;
    for (auto& e : events) if (e.has_chunk()) out.push_back(e.chunk().index());
    return out;
  }
  std::vector<::magi::v1::GenerateEvent> events;
  bool closed = false;
  absl::Status status;
};

::magi::internal::v1::Register Registration() {
  ::magi::internal::v1::Register r;
  r.set_group_id("g");
  r.set_slots(1);
  *r.add_models() = TinyModelInfo();
  return r;
}

::magi::v1::GenerateRequest Request(int chunks) {
  ::magi::v1::GenerateRequest r;
  r.add_prompts()->set_text("x");
  r.set_num_frames(chunks * 24);
  r.set_width(64);
  r.set_height(64);
  return r;
}

WorkerMessage Chunk(const std::string& job, int attempt, int index) {
  WorkerMessage m;
  auto* c = m.mutable_chunk();
  c->set_job_id(job);
  c->set_attempt(attempt);
  c->set_index(index);
  c->set_frame_begin(index * 24);
  c->set_frame_end(index * 24 + 24);
  if (index == 0) c->set_init_segment("INIT");
  c->set_fragment("F" + std::to_string(index));
  return m;
}

WorkerMessage Done(const std::string& job, int attempt, absl::StatusCode code = absl::StatusCode::kOk) {
  WorkerMessage m;
  m.mutable_done()->set_job_id(job);
  m.mutable_done()->set_attempt(attempt);
  m.mutable_done()->set_code(static_cast<int>(code));
  return m;
}


WorkerMessage Applied(const std::string& job, int attempt, int64_t update_id, int from_chunk, const std::string& text) {
  WorkerMessage m;
  auto* a = m.mutable_prompt_applied();
  a->set_job_id(job);
  a->set_attempt(attempt);
  a->set_update_id(update_id);
  a->set_from_chunk(from_chunk);
  a->set_text(text);
  return m;
}

// Collects JobManager::UpdatePrompt answers.
struct PromptAnswers {
  std::vector<absl::StatusOr<JobManager::PromptUpdateResult>> got;
  JobManager::PromptUpdateDone Callback() {
    return [this](absl::StatusOr<JobManager::PromptUpdateResult> r) { got.push_back(std::move(r)); };
  }
};

std::vector<std::pair<int, std::string>> Prompts(const ::magi::v1::Job& job) {
  std::vector<std::pair<int, std::string>> out;
  for (const auto& p : job.request().prompts()) out.emplace_back(p.from_chunk(), p.text());
  return out;
}

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("magi-jm-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    options_.state_dir = dir_.string();
    options_.max_queue = 8;
    Open();
  }
  void TearDown() override {
    manager_.reset();
    fs::remove_all(dir_);
  }
  void Open() {
    manager_.reset();
    auto m = JobManager::Create(options_, nullptr);
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
  }
  std::string Connect(std::shared_ptr<FakeLink> link) {
    auto key = manager_->RegisterGroup(Registration(), link);
    EXPECT_TRUE(key.ok()) << key.status();
    return key.ok() ? *key : "";
  }

  fs::path dir_;
  JobManagerOptions options_;
  std::unique_ptr<JobManager> manager_;
};

TEST_F(JobManagerTest, RunsAJobAndStreamsChunksToWatchers) {
  auto job = manager_->Submit(kAnonymousTenant, Request(2));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->queue_position(), 0);
  auto sub = std::make_shared<FakeSubscriber>();
  ASSERT_TRUE(manager_->Watch(kAnonymousTenant, job->job_id(), 0, sub, true).ok());
  EXPECT_TRUE(sub->events[0].has_accepted());
  auto link = std::make_shared<FakeLink>();
  std::string g = Connect(link);
  ASSERT_EQ(link->Assignments().size(), 1u);
  const auto a = link->Assignments()[0].assign();
  EXPECT_EQ(a.job_id(), job->job_id());
  EXPECT_EQ(a.start_chunk(), 0);
  EXPECT_EQ(a.spec().chunks_total(), 2);
  EXPECT_EQ(a.spec().frames_per_chunk(), 24);
  manager_->OnWorkerMessage(g, Chunk(job->job_id(), 1, 0));
  manager_->OnWorkerMessage(g, Chunk(job->job_id(), 1, 1));
  manager_->OnWorkerMessage(g, Done(job->job_id(), 1));
  EXPECT_EQ(sub->Chunks(), (std::vector<int>{0, 1}));
  EXPECT_TRUE(sub->events.back().has_completed());
  EXPECT_TRUE(sub->closed && sub->status.ok());
  auto got = manager_->GetJob(kAnonymousTenant, job->job_id());
  EXPECT_EQ(got->state(), ::magi::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(got->video_bytes(), 8);  // "INIT" + "F0" + "F1"
  auto path = manager_->FinalVideoPath(kAnonymousTenant, job->job_id());
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(*ReadWholeFile(*path), "INITF0F1");
}

TEST_F(JobManagerTest, LostGroupRequeuesAndTheNextAttemptResumes) {
  auto job = manager_->Submit(kAnonymousTenant, Request(3));
  auto link1 = std::make_shared<FakeLink>();
  std::string g1 = Connect(link1);
  manager_->OnWorkerMessage(g1, Chunk(job->job_id(), 1, 0));
  manager_->OnGroupLost(g1, absl::UnavailableError("killed"));
  EXPECT_EQ(manager_->GetJob(kAnonymousTenant, job->job_id())->state(), ::magi::v1::JOB_STATE_QUEUED);
  // A message from the dead attempt is ignored.
  manager_->OnWorkerMessage(g1, Chunk(job->job_id(), 1, 1));
  auto link2 = std::make_shared<FakeLink>();
  std::string g2 = Connect(link2);
  ASSERT_EQ(link2->Assignments().size(), 1u);
  const auto a = link2->Assignments()[0].assign();
  EXPECT_EQ(a.attempt(), 2);
  EXPECT_EQ(a.start_chunk(), 1);
  // A stale attempt number from the new group is ignored too.
  manager_->OnWorkerMessage(g2, Chunk(job->job_id(), 1, 1));
  EXPECT_EQ(manager_->GetJob(kAnonymousTenant, job->job_id())->chunks_done(), 1);
  manager_->OnWorkerMessage(g2, Chunk(job->job_id(), 2, 1));
  manager_->OnWorkerMessage(g2, Chunk(job->job_id(), 2, 2));
  manager_->OnWorkerMessage(g2, Done(job->job_id(), 2));
  auto got = manager_->GetJob(kAnonymousTenant, job->job_id());
  EXPECT_EQ(got->state(), ::magi::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(got->attempts(), 2);
  EXPECT_EQ(got->stats().attempts(), 2);
}

TEST_F(JobManagerTest, JobWhoseGroupDiesOnEveryAssignmentFailsAfterMaxAttempts) {
  ASSERT_EQ(options_.max_attempts, 3);  // the default
  auto poison = manager_->Submit(kAnonymousTenant, Request(2));
  ASSERT_TRUE(poison.ok()) << poison.status();
  auto later = manager_->Submit(kAnonymousTenant, Request(1));
  ASSERT_TRUE(later.ok()) << later.status();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto link = std::make_shared<FakeLink>();
    std::string g = Connect(link);
    ASSERT_EQ(link->Assignments().size(), 1u) << "attempt " << attempt;
    // The re-queued job goes first every time: the later job waits while attempts remain.
    EXPECT_EQ(link->Assignments()[0].assign().job_id(), poison->job_id());
    EXPECT_EQ(link->Assignments()[0].assign().attempt(), attempt);
    manager_->OnGroupLost(g, absl::UnavailableError("worker died: signal 9"));
  }
  auto got = manager_->GetJob(kAnonymousTenant, poison->job_id());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state(), ::magi::v1::JOB_STATE_FAILED);
  EXPECT_EQ(got->attempts(), 3);
  EXPECT_EQ(got->error_code(), static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_NE(got->error_message().find("worker died: signal 9"), std::string::npos) << got->error_message();
  EXPECT_NE(got->error_message().find("3 attempts"), std::string::npos) << got->error_message();
  // The later job is not starved: the next group gets it.
  auto link = std::make_shared<FakeLink>();
  Connect(link);
  ASSERT_EQ(link->Assignments().size(), 1u);
  EXPECT_EQ(link->Assignments()[0].assign().job_id(), later->job_id());
}

TEST_F(JobManagerTest, MaxAttemptsIsAFlagOfTheManager) {
  options_.max_attempts = 1;
  Open();
  auto job = manager_->Submit(kAnonymousTenant, Request(1));
  auto link = std::make_shared<FakeLink>();
  std::string g = Connect(link);
  manager_->OnGroupLost(g, absl::UnavailableError("gone"));
  EXPECT_EQ(manager_->GetJob(kAnonymousTenant, job->job_id())->state(), ::magi::v1::JOB_STATE_FAILED);
}

TEST_F(JobManagerTest, IdempotencyKeyIsTheSameJobForTheSameRequestOnly) {
  auto r = Request(1);
  r.set_idempotency_key("key-7");
  auto first = manager_->Submit(kAnonymousTenant, r);
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = manager_->Submit(kAnonymousTenant, r);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->job_id(), first->job_id());
  r.set_seed(99);
  auto other = manager_->Submit(kAnonymousTenant, r);
  ASSERT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists) << other.status();
  EXPECT_TRUE(absl::StartsWith(other.status().message(), "idempotency_key: 'key-7'")) << other.status();
  EXPECT_EQ(manager_->queued_jobs(), 1);
}

TEST_F(JobManagerTest, OutOfOrderChunkDropsTheGroup) {
  auto job = manager_->Submit(kAnonymousTenant, Request(3));
  auto link = std::make_shared<FakeLink>();
  std::string g = Connect(link);
  manager_->OnWorkerMessage(g, Chunk(job->job_id(), 1, 2));  // skips chunks 0 and 1
  EXPECT_TRUE(link->was_closed);
  EXPECT_EQ(manager_->groups_up(), 0);
  EXPECT_EQ(manager_->GetJob(kAnonymousTenant, job->job_id())->state(), ::magi::v1::JOB_STATE_QUEUED);
}

TEST_F(JobManagerTest, WorkerFinishingEarlyFailsTheJob) {
  auto job = manager_->Submit(kAnonymousTenant, Request(2));
  auto link = std::make_shared<FakeLink>();
  std::string g = Connect(link);
  manager_->OnWorkerMessage(g, Chunk(job->job_id(), 1, 0));
  manager_->OnWorkerMessage(g, Done(job->job_id(), 1));
  auto got = manager_->GetJob(kAnonymousTenant, job->job_id());
  EXPECT_EQ(got->state(), ::magi::v1::JOB_STATE_FAILED);
  EXPECT_EQ(got->error_code(), static_cast<int>(absl::StatusCode::kInternal));
}

TEST_F(JobManagerTest, CancelRunningJobTellsTheGroupAndFreesTheSlotOnDone) {
  auto a = manager_->Submit(kAnonymousTenant, Request(2));
  auto b = manager_->Submit(kAnonymousTenant, Request(1));
  auto link = std::make_shared<FakeLink>();
  std::string g = Connect(link);
  auto sub = std::make_shared<FakeSubscriber>();
  ASSERT_TRUE(manager_->Watch(kAnonymousTenant, a->job_id(), 0, sub, false).ok());
  auto cancelled = manager_->Cancel(kAnonymousTenant, a->job_id());
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state(), ::magi::v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(link->Cancels(), 1);
  EXPECT_TRUE(sub->closed);
  EXPECT_TRUE(absl::IsCancelled(sub->status));
  EXPECT_EQ(link->Assignments().size(), 1u);  // slot busy until the worker stops
  manager_->OnWorkerMessage(g, Done(a->job_id(), 1, absl::StatusCode::kCancelled));
  ASSERT_EQ(link->Assignments().size(), 2u);
  EXPECT_EQ(link->Assignments()[1].assign().job_id(), b->job_id());
  EXPECT_TRUE(absl::IsNotFound(manager_->Cancel(kAnonymousTenant, "j-none").status()));
}

TEST_F(JobManagerTest, DeleteJobCancelsARunningJobAndRemovesEveryTrace) {
  auto a = manager_->Submit(kAnonymousTenant, Request(2));
  auto b = manager_->Submit(kAnonymousTenant, Request(1));
  auto link = std::make_shared<FakeLink>();
  std::string g = Connect(link);
  ASSERT_EQ(link->Assignments().size(), 1u);
  ASSERT_TRUE(manager_->DeleteJob(kAnonymousTenant, a->job_id()).ok());
  EXPECT_EQ(link->Cancels(), 1);  // the running job was stopped, not orphaned on its group
  EXPECT_TRUE(absl::IsNotFound(manager_->GetJob(kAnonymousTenant, a->job_id()).status()));
  EXPECT_TRUE(absl::IsNotFound(manager_->DeleteJob(kAnonymousTenant, a->job_id())));
  EXPECT_TRUE(absl::IsNotFound(manager_->DeleteJob(kAnonymousTenant, "j-none")));
  // The group's late Done for the deleted job frees its slot for the next job.
  manager_->OnWorkerMessage(g, Done(a->job_id(), 1, absl::StatusCode::kCancelled));
  ASSERT_EQ(link->Assignments().size(), 2u);
  EXPECT_EQ(link->Assignments()[1].assign().job_id(), b->job_id());
  EXPECT_TRUE(absl::IsNotFound(manager_->GetJob(kAnonymousTenant, a->job_id()).status()));
  // A queued job is deleted as well.
  auto c = manager_->Submit(kAnonymousTenant, Request(1));
  ASSERT_TRUE(manager_->DeleteJob(kAnonymousTenant, c->job_id()).ok());
  EXPECT_TRUE(absl::IsNotFound(manager_->GetJob(kAnonymousTenant, c->job_id()).status()));
}

TEST_F(JobManagerTest, DeadlineFailsAQueuedJob) {
  auto r = Request(1);
  r.set_deadline_unix_ms(absl::ToUnixMillis(absl::Now()) + 100);
  auto job = manager_->Submit(kAnonymousTenant, r);
  ASSERT_TRUE(job.ok());
  for (int i = 0; i < 200 && manager_->GetJob(kAnonymousTenant, job->job_id())->state() == ::magi::v1::JOB_STATE_QUEUED; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  auto got = manager_->GetJob(kAnonymousTenant, job->job_id());
  EXPECT_EQ(got->state(), ::magi::v1::JOB_STATE_FAILED);
  EXPECT_EQ(got->error_code(), static_cast<int>(absl::StatusCode::kDeadlineExceeded));
}

TEST_F(JobManagerTest, RestartRecoversQueuedAndRunningJobs) {
  auto a = manager_->Submit(kAnonymousTenant, Request(2));
  auto b = manager_->Submit(kAnonymousTenant, Request(2));
  auto link = std::make_shared<FakeLink>();
  std::string g = Connect(link);
  manager_->OnWorkerMessage(g, Chunk(a->job_id(), 1, 0));
  Open();  // the "crash": a new manager on the same state dir
  EXPECT_EQ(manager_->queued_jobs(), 2);
  auto link2 = std::make_shared<FakeLink>();
  Connect(link2);
  ASSERT_EQ(link2->Assignments().size(), 1u);
  EXPECT_EQ(link2->Assignments()[0].assign().job_id(), a->job_id());  // keeps its place
  EXPECT_EQ(link2->Assignments()[0].assign().start_chunk(), 1);
  auto sub = std::make_shared<FakeSubscriber>();
  ASSERT_TRUE(manager_->Watch(kAnonymousTenant, a->job_id(), 0, sub, false).ok());
  ASSERT_EQ(sub->Chunks(), (std::vector<int>{0}));  // replayed from disk
  EXPECT_EQ(sub->events[0].chunk().init_segment(), "INIT");
  EXPECT_EQ(manager_->GetJob(kAnonymousTenant, b->job_id())->queue_position(), 0);
}

TEST_F(JobManagerTest, SilentGroupIsDroppedAndItsJobRequeued) {
  options_.worker_timeout_seconds = 0.2;
  Open();
  auto job = manager_->Submit(kAnonymousTenant, Request(1));
  auto link = std::make_shared<FakeLink>();
  Connect(link);
  ASSERT_EQ(link->Assignments().size(), 1u);
  for (int i = 0; i < 300 && manager_->groups_up() > 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(manager_->groups_up(), 0);
  EXPECT_TRUE(link->was_closed);
  EXPECT_TRUE(absl::IsUnavailable(link->closed)) << link->closed;
  EXPECT_EQ(manager_->GetJob(kAnonymousTenant, job->job_id())->state(), ::magi::v1::JOB_STATE_QUEUED);
}

TEST_F(JobManagerTest, SeveralGroupsShareTheQueueByModelAndSize) {
  auto a = manager_->Submit(kAnonymousTenant, Request(1));  // 64x64: only the big group can run it
  ASSERT_TRUE(a.ok()) << a.status();
  auto reg_small = Registration();
  reg_small.mutable_models(0)->set_max_width(32);
  auto small = std::make_shared<FakeLink>();
  ASSERT_TRUE(manager_->RegisterGroup(reg_small, small).ok());
  EXPECT_TRUE(small->Assignments().empty());
  auto r32 = Request(1);
  r32.set_width(32);
  r32.set_height(32);
  auto b = manager_->Submit(kAnonymousTenant, r32);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(small->Assignments().size(), 1u);
  EXPECT_EQ(small->Assignments()[0].assign().job_id(), b->job_id());  // skipped the 64x64 one
  auto big = std::make_shared<FakeLink>();
  Connect(big);
  ASSERT_EQ(big->Assignments().size(), 1u);
  EXPECT_EQ(big->Assignments()[0].assign().job_id(), a->job_id());
  EXPECT_EQ(manager_->running_jobs(), 2);
  EXPECT_EQ(manager_->groups_up(), 2);
}

TEST_F(JobManagerTest, DrainingRefusesNewJobs) {
  manager_->StartDraining();
  EXPECT_TRUE(absl::IsUnavailable(manager_->Submit(kAnonymousTenant, Request(1)).status()));
}

TEST_F(JobManagerTest, BadRegistrationIsRefused) {
  ::magi::internal::v1::Register r;
  r.set_slots(1);
  auto key = manager_->RegisterGroup(r, std::make_shared<FakeLink>());
  EXPECT_TRUE(absl::IsInvalidArgument(key.status()));
  EXPECT_NE(key.status().message().find("register.models"), std::string::npos);
}

}  // namespace
}  // namespace magi

namespace magi {
namespace {

// Another tenant's job is NotFound with exactly the message of an unknown id, through every
// read and write of the API, whether the job is queued, running or finished (in the store).
TEST_F(JobManagerTest, AnotherTenantsJobIsNotFoundLikeAnUnknownId) {
  auto queued = manager_->Submit("alice", Request(2));
  auto finished = manager_->Submit("alice", Request(1));
  ASSERT_TRUE(queued.ok() && finished.ok());
  auto link = std::make_shared<FakeLink>();
  std::string g = Connect(link);  // one slot: takes the first job
  manager_->OnWorkerMessage(g, Chunk(queued->job_id(), 1, 0));
  manager_->OnWorkerMessage(g, Chunk(queued->job_id(), 1, 1));
  manager_->OnWorkerMessage(g, Done(queued->job_id(), 1));
  ASSERT_EQ(manager_->GetJob("alice", queued->job_id())->state(), ::magi::v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(manager_->GetJob("alice", finished->job_id())->state(), ::magi::v1::JOB_STATE_RUNNING);

  const absl::Status unknown = manager_->GetJob("bob", "no-such-job").status();
  ASSERT_TRUE(absl::IsNotFound(unknown)) << unknown;
  auto same_as_unknown = [&](const absl::Status& s, const std::string& id) {
    EXPECT_TRUE(absl::IsNotFound(s)) << s;
    EXPECT_EQ(s.message(), absl::StrCat("job_id: no job '", id, "'")) << s;
  };
  for (const std::string& id : {queued->job_id(), finished->job_id()}) {
    same_as_unknown(manager_->GetJob("bob", id).status(), id);
    same_as_unknown(manager_->GetJob(kAnonymousTenant, id).status(), id);
    same_as_unknown(manager_->FinalVideoPath("bob", id).status(), id);
    auto sub = std::make_shared<FakeSubscriber>();
    same_as_unknown(manager_->Watch("bob", id, 0, sub, false), id);
    EXPECT_TRUE(sub->events.empty());
    same_as_unknown(manager_->Cancel("bob", id).status(), id);
    same_as_unknown(manager_->DeleteJob("bob", id), id);
  }
  // Nothing above touched alice's jobs.
  EXPECT_EQ(manager_->GetJob("alice", queued->job_id())->state(), ::magi::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(manager_->GetJob("alice", finished->job_id())->state(), ::magi::v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(manager_->FinalVideoPath("alice", queued->job_id()).ok());

  ::magi::v1::ListJobsRequest all;
  EXPECT_EQ(manager_->ListJobs("bob", all)->jobs_size(), 0);
  EXPECT_EQ(manager_->ListJobs("alice", all)->jobs_size(), 2);
  auto bobs = manager_->Submit("bob", Request(1));
  ASSERT_TRUE(bobs.ok());
  auto bob_list = manager_->ListJobs("bob", all);
  ASSERT_EQ(bob_list->jobs_size(), 1);
  EXPECT_EQ(bob_list->jobs(0).job_id(), bobs->job_id());
  // The owner can still cancel.
  EXPECT_EQ(manager_->Cancel("alice", finished->job_id())->state(), ::magi::v1::JOB_STATE_CANCELLED);
}

TEST_F(JobManagerTest, IdempotencyKeysArePerTenant) {
  auto r = Request(1);
  r.set_idempotency_key("shared-key");
  auto a = manager_->Submit("alice", r);
  ASSERT_TRUE(a.ok()) << a.status();
  r.set_seed(5);  // a different request under the same key: fine for another tenant
  auto b = manager_->Submit("bob", r);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(a->job_id(), b->job_id());
  auto b_again = manager_->Submit("bob", r);
  ASSERT_TRUE(b_again.ok());
  EXPECT_EQ(b_again->job_id(), b->job_id());
  EXPECT_EQ(manager_->Submit("alice", r).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(JobManagerTest, TenantSubmitRate) {
  options_.tenant_submits_per_minute = 2;
  Open();
  auto keyed = Request(1);
  keyed.set_idempotency_key("k1");
  auto first = manager_->Submit("alice", keyed);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(manager_->Submit("alice", Request(1)).ok());
  auto third = manager_->Submit("alice", Request(1));
  ASSERT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_TRUE(absl::StrContains(third.status().message(), "--tenant-submits-per-minute 2")) << third.status();
  EXPECT_TRUE(absl::StrContains(third.status().message(), "'alice'")) << third.status();
  EXPECT_TRUE(absl::StrContains(third.status().message(), "retry in 30 s")) << third.status();
  // A retry of an accepted job is answered, not rate limited; another tenant has its own rate.
  auto retry = manager_->Submit("alice", keyed);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->job_id(), first->job_id());
  EXPECT_TRUE(manager_->Submit("bob", Request(1)).ok());
}

TEST(TenantRateLimiterTest, BurstThenOneEveryInterval) {
  TenantRateLimiter limiter(6);  // 6 per minute: a burst of 6, then one every 10 s
  int64_t retry = 0;
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(limiter.TryTake("t", 1000, &retry)) << i;
  EXPECT_FALSE(limiter.TryTake("t", 1000, &retry));
  EXPECT_EQ(retry, 10000);
  EXPECT_FALSE(limiter.TryTake("t", 10999, &retry));
  EXPECT_EQ(retry, 1);
  EXPECT_TRUE(limiter.TryTake("t", 11000, &retry));
  EXPECT_FALSE(limiter.TryTake("t", 11000, &retry));
  EXPECT_TRUE(limiter.TryTake("u", 11000, &retry));  // per tenant
  // A long pause refills to the burst, not beyond.
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(limiter.TryTake("t", 3600000, &retry)) << i;
  EXPECT_FALSE(limiter.TryTake("t", 3600000, &retry));
  // A clock that steps back neither refills nor breaks the bucket.
  EXPECT_FALSE(limiter.TryTake("t", 5000, &retry));
  TenantRateLimiter off;
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(off.TryTake("t", 0, &retry));
}

TEST_F(JobManagerTest, TenantQueueQuota) {
  options_.tenant_max_queued = 2;
  Open();
  ASSERT_TRUE(manager_->Submit("alice", Request(1)).ok());
  ASSERT_TRUE(manager_->Submit("alice", Request(1)).ok());
  auto third = manager_->Submit("alice", Request(1));
  ASSERT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_TRUE(absl::StrContains(third.status().message(), "--tenant-max-queued 2")) << third.status();
  EXPECT_TRUE(absl::StrContains(third.status().message(), "'alice'")) << third.status();
  EXPECT_TRUE(manager_->Submit("bob", Request(1)).ok());  // another tenant's room is its own
  // A job that starts running leaves the queue: alice has room again.
  auto link = std::make_shared<FakeLink>();
  Connect(link);
  EXPECT_TRUE(manager_->Submit("alice", Request(1)).ok());
}

}  // namespace
}  // namespace magi

namespace magi {
namespace {

TEST_F(JobManagerTest, PromptUpdateOfAQueuedJobIsRecordedFromItsNextChunk) {
  ::magi::v1::GenerateRequest submitted = Request(3);
  submitted.set_idempotency_key("k1");
  auto job = manager_->Submit(kAnonymousTenant, submitted);
  ASSERT_TRUE(job.ok());
  PromptAnswers answers;
  manager_->UpdatePrompt(kAnonymousTenant, job->job_id(), "a wolf", answers.Callback());
  ASSERT_EQ(answers.got.size(), 1u);
  ASSERT_TRUE(answers.got[0].ok()) << answers.got[0].status();
  EXPECT_EQ(answers.got[0]->from_chunk, 0);
  EXPECT_EQ(Prompts(answers.got[0]->job), (std::vector<std::pair<int, std::string>>{{0, "a wolf"}}));
  // Persisted: a restarted manager has it, and the assignment carries it; a retry of the
  // submission (same key, same request as submitted) is still the same job.
  Open();
  auto retry = manager_->Submit(kAnonymousTenant, submitted);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->job_id(), job->job_id());
  auto link = std::make_shared<FakeLink>();
  Connect(link);
  ASSERT_EQ(link->Assignments().size(), 1u);
  EXPECT_EQ(link->Assignments()[0].assign().spec().request().prompts(0).text(), "a wolf");
}

TEST_F(JobManagerTest, PromptUpdateOfARunningJobWaitsForItsGroupAndIsRecorded) {
  auto job = manager_->Submit(kAnonymousTenant, Request(4));
  auto link = std::make_shared<FakeLink>();
  std::string g = Connect(link);
  manager_->OnWorkerMessage(g, Chunk(job->job_id(), 1, 0));
  PromptAnswers answers;
  manager_->UpdatePrompt(kAnonymousTenant, job->job_id(), "older", answers.Callback());
  manager_->UpdatePrompt(kAnonymousTenant, job->job_id(), "a wolf", answers.Callback());
  EXPECT_TRUE(answers.got.empty());  // not before the group uses it
  std::vector<::magi::internal::v1::PromptUpdate> sent;
  for (const auto& m : link->sent) if (m.has_prompt_update()) sent.push_back(m.prompt_update());
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].job_id(), job->job_id());
  EXPECT_EQ(sent[1].attempt(), 1);
  EXPECT_GT(sent[1].update_id(), sent[0].update_id());
  EXPECT_EQ(sent[1].text(), "a wolf");
  // The group used the newer one from chunk 2: the older one is answered as replaced.
  manager_->OnWorkerMessage(g, Applied(job->job_id(), 1, sent[1].update_id(), 2, "a wolf"));
  ASSERT_EQ(answers.got.size(), 2u);
  EXPECT_EQ(answers.got[0].status().code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(answers.got[1].ok()) << answers.got[1].status();
  EXPECT_EQ(answers.got[1]->from_chunk, 2);
  const std::vector<std::pair<int, std::string>> want = {{0, "x"}, {2, "a wolf"}};
  EXPECT_EQ(Prompts(answers.got[1]->job), want);
  EXPECT_EQ(Prompts(*manager_->GetJob(kAnonymousTenant, job->job_id())), want);
  // A stale attempt's answer changes nothing.
  manager_->OnWorkerMessage(g, Applied(job->job_id(), 7, 99, 3, "nope"));
  EXPECT_EQ(Prompts(*manager_->GetJob(kAnonymousTenant, job->job_id())), want);
  // Every chunk had started: answered FailedPrecondition, nothing recorded.
  manager_->UpdatePrompt(kAnonymousTenant, job->job_id(), "too late", answers.Callback());
  manager_->OnWorkerMessage(g, Applied(job->job_id(), 1, sent[1].update_id() + 1, -1, "too late"));
  ASSERT_EQ(answers.got.size(), 3u);
  EXPECT_EQ(answers.got[2].status().code(), absl::StatusCode::kFailedPrecondition);
  // Persisted: a restart (the job re-queued at its stored chunk) keeps the change.
  Open();
  EXPECT_EQ(Prompts(*manager_->GetJob(kAnonymousTenant, job->job_id())), want);
}

TEST_F(JobManagerTest, PendingPromptUpdateIsUsedFromTheResumedChunkOrAnsweredWhenTheJobEnds) {
  auto job = manager_->Submit(kAnonymousTenant, Request(3));
  auto link = std::make_shared<FakeLink>();
  std::string g = Connect(link);
  manager_->OnWorkerMessage(g, Chunk(job->job_id(), 1, 0));
  PromptAnswers answers;
  manager_->UpdatePrompt(kAnonymousTenant, job->job_id(), "a wolf", answers.Callback());
  manager_->OnGroupLost(g, absl::UnavailableError("killed"));
  ASSERT_EQ(answers.got.size(), 1u);
  ASSERT_TRUE(answers.got[0].ok()) << answers.got[0].status();
  EXPECT_EQ(answers.got[0]->from_chunk, 1);  // the chunk the next attempt starts at
  auto link2 = std::make_shared<FakeLink>();
  std::string g2 = Connect(link2);
  ASSERT_EQ(link2->Assignments().size(), 1u);
  const auto spec = link2->Assignments()[0].assign().spec();
  ASSERT_EQ(spec.request().prompts_size(), 2);
  EXPECT_EQ(spec.request().prompts(1).from_chunk(), 1);
  EXPECT_EQ(spec.request().prompts(1).text(), "a wolf");
  // A change still pending when the job ends is answered then.
  manager_->UpdatePrompt(kAnonymousTenant, job->job_id(), "late", answers.Callback());
  manager_->OnWorkerMessage(g2, Chunk(job->job_id(), 2, 1));
  manager_->OnWorkerMessage(g2, Chunk(job->job_id(), 2, 2));
  manager_->OnWorkerMessage(g2, Done(job->job_id(), 2));
  ASSERT_EQ(answers.got.size(), 2u);
  EXPECT_EQ(answers.got[1].status().code(), absl::StatusCode::kFailedPrecondition);
  // An ended job, a bad text, another tenant: answered at once.
  manager_->UpdatePrompt(kAnonymousTenant, job->job_id(), "after", answers.Callback());
  manager_->UpdatePrompt(kAnonymousTenant, job->job_id(), "", answers.Callback());
  manager_->UpdatePrompt("other", job->job_id(), "x", answers.Callback());
  ASSERT_EQ(answers.got.size(), 5u);
  EXPECT_EQ(answers.got[2].status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(answers.got[3].status().code(), absl::StatusCode::kFailedPrecondition);  // ended before the text check
  EXPECT_EQ(answers.got[4].status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobManagerTest, PromptUpdateTextIsCheckedAtTheEdge) {
  auto job = manager_->Submit(kAnonymousTenant, Request(2));
  PromptAnswers answers;
  manager_->UpdatePrompt(kAnonymousTenant, job->job_id(), "", answers.Callback());
  manager_->UpdatePrompt(kAnonymousTenant, job->job_id(), std::string(options_.limits.job.max_prompt_bytes + 1, 'a'),
                         answers.Callback());
  ASSERT_EQ(answers.got.size(), 2u);
  for (const auto& a : answers.got) {
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(a.status().message().substr(0, 5), "text:") << a.status();
  }
  EXPECT_EQ(Prompts(*manager_->GetJob(kAnonymousTenant, job->job_id())),
            (std::vector<std::pair<int, std::string>>{{0, "x"}}));
}

}  // namespace
}  // namespace magi
