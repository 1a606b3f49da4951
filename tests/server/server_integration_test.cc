// In-process server + worker group: ServerApp on a free port, a WorkerLink with the
// synthetic frame runner on a thread, and a C++ client. Multi-process behaviour (kill -9,
// restarts, the CLI) is covered by tests/e2e.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <thread>

#include "magi/v1/video_generation.grpc.pb.h"
#include "server/server_app.h"
#include "worker/main/job_executor.h"
#include "worker/main/worker_link.h"
#include "worker/runner/synthetic_frame_runner.h"

namespace magi {
namespace {

namespace fs = std::filesystem;
using ::magi::v1::GenerateEvent;

::magi::v1::GenerateRequest SmallRequest(int chunks) {
  ::magi::v1::GenerateRequest r;
  r.add_prompts()->set_text("a lighthouse");
  r.set_num_frames(chunks * 24);
  r.set_width(32);
  r.set_height(32);
  r.set_fps(8);
  r.set_num_steps(4);
  r.set_seed(3);
  return r;
}

class ServerIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("magi-it-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.http_listen = "";
    o.jobs.state_dir = dir_.string();
    o.jobs.max_queue = 4;
    o.jobs.default_model = "synthetic";  // the groups here run SyntheticFrameRunner
    ASSERT_TRUE(app_.Start(o).ok());
    addr_ = "127.0.0.1:" + std::to_string(app_.grpc_port());
    stub_ = ::magi::v1::VideoGeneration::NewStub(
        grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (link_) link_->Stop();
    if (worker_.joinable()) worker_.join();
    app_.Shutdown();
    fs::remove_all(dir_);
  }
  void StartWorker() {
    WorkerLinkOptions lo;
    lo.server = addr_;
    lo.group_id = "test";
    lo.token_file = app_.worker_token_file();
    link_ = std::make_unique<WorkerLink>(lo, &runner_);
    worker_ = std::thread([this] { link_->Run().IgnoreError(); });
    for (int i = 0; i < 500 && app_.manager().groups_up() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(app_.manager().groups_up(), 1);
  }

  fs::path dir_;
  ServerApp app_;
  std::string addr_;
  std::unique_ptr<::magi::v1::VideoGeneration::Stub> stub_;
  SyntheticFrameRunner runner_{absl::Milliseconds(1)};
  std::unique_ptr<WorkerLink> link_;
  std::thread worker_;
};

TEST_F(ServerIntegrationTest, GenerateStreamsEveryChunkThenCompletes) {
  StartWorker();
  grpc::ClientContext ctx;
  auto reader = stub_->Generate(&ctx, SmallRequest(3));
  GenerateEvent e;
  std::vector<int> chunks;
  std::string video, job_id;
  bool completed = false;
  while (reader->Read(&e)) {
    if (e.has_accepted()) job_id = e.accepted().job_id();
    if (e.has_chunk()) {
      chunks.push_back(e.chunk().index());
      video += e.chunk().init_segment() + e.chunk().fragment();
    }
    completed |= e.has_completed();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(completed);
  EXPECT_EQ(chunks, (std::vector<int>{0, 1, 2}));
  grpc::ClientContext vctx;
  ::magi::v1::GetVideoRequest gv;
  gv.set_job_id(job_id);
  auto vr = stub_->GetVideo(&vctx, gv);
  ::magi::v1::VideoData d;
  std::string got;
  while (vr->Read(&d)) got += d.data();
  ASSERT_TRUE(vr->Finish().ok());
  EXPECT_EQ(got, video);
}

TEST_F(ServerIntegrationTest, QueueFullAndBadRequestsAreRefusedWithoutWorkers) {
  for (int i = 0; i < 4; ++i) {
    grpc::ClientContext ctx;
    ::magi::v1::SubmitResponse resp;
    ASSERT_TRUE(stub_->Submit(&ctx, SmallRequest(1), &resp).ok());
    EXPECT_EQ(resp.job().queue_position(), i);
  }
  grpc::ClientContext ctx;
  ::magi::v1::SubmitResponse resp;
  EXPECT_EQ(stub_->Submit(&ctx, SmallRequest(1), &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  auto bad = SmallRequest(1);
  bad.set_width(33);
  grpc::ClientContext ctx2;
  grpc::Status s = stub_->Submit(&ctx2, bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("width:", 0), 0u) << s.error_message();
  // A worker arriving later drains the queue.
  StartWorker();
  for (int i = 0; i < 1000 && (app_.manager().queued_jobs() > 0 || app_.manager().running_jobs() > 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(app_.manager().queued_jobs(), 0);
  EXPECT_EQ(app_.manager().running_jobs(), 0);
}

// A group with two slots (--max_jobs_per_group 2) runs two jobs at once and never three; a
// cancel reaches the job it names while the other runs on; every other job completes with
// all its chunks.
TEST_F(ServerIntegrationTest, AGroupWithTwoSlotsRunsTwoJobsAtOnce) {
  SyntheticFrameRunner runner(absl::Milliseconds(20), 0, /*max_jobs=*/2);
  WorkerLinkOptions lo;
  lo.server = addr_;
  lo.group_id = "two-slots";
  lo.token_file = app_.worker_token_file();
  link_ = std::make_unique<WorkerLink>(lo, &runner);
  worker_ = std::thread([this] { link_->Run().IgnoreError(); });
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    grpc::ClientContext ctx;
    ::magi::v1::SubmitResponse resp;
    ASSERT_TRUE(stub_->Submit(&ctx, SmallRequest(2), &resp).ok());
    ids.push_back(resp.job().job_id());
  }
  auto state = [&](const std::string& id) {
    grpc::ClientContext ctx;
    ::magi::v1::GetJobRequest g;
    g.set_job_id(id);
    ::magi::v1::Job job;
    EXPECT_TRUE(stub_->GetJob(&ctx, g, &job).ok());
    return job;
  };
  int most = 0;
  bool cancelled = false;
  for (int i = 0; i < 3000 && (app_.manager().queued_jobs() > 0 || app_.manager().running_jobs() > 0); ++i) {
    most = std::max(most, app_.manager().running_jobs());
    if (!cancelled && state(ids[1]).state() == ::magi::v1::JOB_STATE_RUNNING &&
        state(ids[0]).state() == ::magi::v1::JOB_STATE_RUNNING) {
      grpc::ClientContext ctx;
      ::magi::v1::CancelRequest c;
      c.set_job_id(ids[1]);
      ::magi::v1::Job job;
      ASSERT_TRUE(stub_->Cancel(&ctx, c, &job).ok());
      cancelled = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(most, 2);
  EXPECT_TRUE(cancelled) << "jobs 0 and 1 were never running together";
  for (size_t i = 0; i < ids.size(); ++i) {
    const ::magi::v1::Job job = state(ids[i]);
    if (i == 1) {
      EXPECT_EQ(job.state(), ::magi::v1::JOB_STATE_CANCELLED);
    } else {
      EXPECT_EQ(job.state(), ::magi::v1::JOB_STATE_SUCCEEDED) << ids[i] << ": " << job.error_message();
      EXPECT_EQ(job.chunks_done(), 2);
    }
  }
}

// What makes resumption exact: an attempt that starts at chunk k re-encodes the earlier
// chunks' frames and emits fragments identical to an uninterrupted run's.
TEST(JobExecutorTest, ResumedAttemptEmitsIdenticalFragments) {
  SyntheticFrameRunner runner{absl::ZeroDuration()};
  ::magi::internal::v1::Assignment a;
  a.set_job_id("j");
  a.set_attempt(1);
  auto spec = BuildJobSpec(SmallRequest(4), runner.Models().front());
  ASSERT_TRUE(spec.ok()) << spec.status();
  *a.mutable_spec() = *spec;
  auto run = [&](int start) {
    a.set_start_chunk(start);
    std::vector<std::string> fragments;
    absl::Status done_status;
    JobExecutor ex(runner, a, [&](const ::magi::internal::v1::WorkerMessage& m) {
      if (m.has_chunk()) fragments.push_back(m.chunk().init_segment() + m.chunk().fragment());
      if (m.has_done()) done_status = absl::Status(static_cast<absl::StatusCode>(m.done().code()), m.done().message());
      return true;
    });
    EXPECT_TRUE(ex.Run().ok());
    EXPECT_TRUE(done_status.ok());
    return fragments;
  };
  auto whole = run(0);
  auto resumed = run(2);
  ASSERT_EQ(whole.size(), 4u);
  ASSERT_EQ(resumed.size(), 2u);
  EXPECT_EQ(resumed[0], whole[2]);
  EXPECT_EQ(resumed[1], whole[3]);
}

TEST(JobExecutorTest, CancelStopsWithinAStep) {
  SyntheticFrameRunner runner{absl::Milliseconds(2)};
  ::magi::internal::v1::Assignment a;
  a.set_job_id("j");
  a.set_attempt(1);
  auto spec = BuildJobSpec(SmallRequest(20), runner.Models().front());
  ASSERT_TRUE(spec.ok()) << spec.status();
  *a.mutable_spec() = *spec;
  int chunks = 0;
  int code = -1;
  JobExecutor* self = nullptr;
  JobExecutor ex(runner, a, [&](const ::magi::internal::v1::WorkerMessage& m) {
    if (m.has_chunk() && ++chunks == 2) self->Cancel();
    if (m.has_done()) code = m.done().code();
    return true;
  });
  self = &ex;
  EXPECT_TRUE(absl::IsCancelled(ex.Run()));
  EXPECT_EQ(chunks, 2);
  EXPECT_EQ(code, static_cast<int>(absl::StatusCode::kCancelled));
}

}  // namespace
}  // namespace magi
