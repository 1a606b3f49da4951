// Worker authentication through the real gRPC stack: ServerApp on free ports, raw
// WorkerPool clients posing as worker groups (no token, a wrong token), and a WorkerLink
// with the server's token. An impostor must be refused UNAUTHENTICATED and see no job; the
// real group must get it. Also: WorkerPool on its own listener (--worker_listen) is not
// served on the public port.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "base/worker_token.h"
#include "magi/internal/v1/worker_pool.grpc.pb.h"
#include "magi/v1/video_generation.grpc.pb.h"
#include "server/server_app.h"
#include "server/server_metrics.h"
#include "worker/main/worker_link.h"
#include "worker/runner/synthetic_frame_runner.h"

namespace magi {
namespace {

namespace fs = std::filesystem;
using ::magi::internal::v1::ServerMessage;
using ::magi::internal::v1::WorkerMessage;

::magi::v1::GenerateRequest SmallRequest() {
  ::magi::v1::GenerateRequest r;
  r.add_prompts()->set_text("the victim's private prompt");
  r.set_num_frames(24);
  r.set_width(32);
  r.set_height(32);
  r.set_fps(8);
  r.set_num_steps(4);
  r.set_seed(3);
  return r;
}

// What a plain client posing as a group sees: the messages it received and the final status.
struct ImpostorResult {
  std::vector<ServerMessage> received;
  grpc::Status status;
};

ImpostorResult PoseAsGroup(const std::string& addr, const std::string& authorization) {
  auto stub = ::magi::internal::v1::WorkerPool::NewStub(
      grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!authorization.empty()) ctx.AddMetadata(kWorkerTokenMetadataKey, authorization);
  auto stream = stub->Connect(&ctx);
  WorkerMessage reg;
  reg.mutable_register_()->set_group_id("impostor");
  auto* model = reg.mutable_register_()->add_models();
  model->set_name("tiny");
  model->set_frames_per_chunk(24);
  model->set_max_frames(240);
  model->set_max_width(1024);
  model->set_max_height(1024);
  reg.mutable_register_()->set_slots(1);
  reg.mutable_register_()->set_world_size(1);
  stream->Write(reg);
  ImpostorResult r;
  ServerMessage in;
  while (stream->Read(&in)) r.received.push_back(in);
  stream->WritesDone();
  r.status = stream->Finish();
  return r;
}

class WorkerPoolAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("magi-wpa-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override {
    if (link_) link_->Stop();
    if (worker_.joinable()) worker_.join();
    app_.Shutdown();
    fs::remove_all(dir_);
  }
  void Start(const std::string& worker_listen) {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.worker_listen = worker_listen;
    o.http_listen = "";
    o.jobs.state_dir = dir_.string();
    o.jobs.default_model = "synthetic";  // the groups here run SyntheticFrameRunner
    ASSERT_TRUE(app_.Start(o).ok());
    public_addr_ = "127.0.0.1:" + std::to_string(app_.grpc_port());
    worker_addr_ = "127.0.0.1:" + std::to_string(app_.worker_port());
    stub_ = ::magi::v1::VideoGeneration::NewStub(grpc::CreateChannel(public_addr_, grpc::InsecureChannelCredentials()));
  }
  std::string Submit() {
    grpc::ClientContext ctx;
    ::magi::v1::SubmitResponse resp;
    EXPECT_TRUE(stub_->Submit(&ctx, SmallRequest(), &resp).ok());
    return resp.job().job_id();
  }
  ::magi::v1::JobState State(const std::string& job_id) {
    grpc::ClientContext ctx;
    ::magi::v1::GetJobRequest req;
    req.set_job_id(job_id);
    ::magi::v1::Job job;
    EXPECT_TRUE(stub_->GetJob(&ctx, req, &job).ok());
    return job.state();
  }
  void StartWorker(const std::string& token_file) {
    WorkerLinkOptions lo;
    lo.server = worker_addr_;
    lo.group_id = "real";
    lo.token_file = token_file;
    link_ = std::make_unique<WorkerLink>(lo, &runner_);
    worker_ = std::thread([this] { link_->Run().IgnoreError(); });
  }
  std::string Token() {
    auto tokens = ReadWorkerTokenFile(app_.worker_token_file());
    EXPECT_TRUE(tokens.ok()) << tokens.status();
    return tokens.ok() ? tokens->front() : std::string();
  }

  fs::path dir_;
  ServerApp app_;
  std::string public_addr_, worker_addr_;
  std::unique_ptr<::magi::v1::VideoGeneration::Stub> stub_;
  SyntheticFrameRunner runner_{absl::Milliseconds(1)};
  std::unique_ptr<WorkerLink> link_;
  std::thread worker_;
};

TEST_F(WorkerPoolAuthTest, ImpostorsAreRefusedAndSeeNoJobTheRealGroupGetsIt) {
  Start("");
  EXPECT_EQ(app_.worker_port(), app_.grpc_port());
  const std::string job = Submit();
  ASSERT_EQ(State(job), ::magi::v1::JOB_STATE_QUEUED);

  for (const std::string& authorization :
       {std::string(), std::string("Bearer 0123456789abcdef0123456789abcdef"), Token(),
        "Basic " + Token()}) {
    ImpostorResult r = PoseAsGroup(worker_addr_, authorization);
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << authorization << ": " << r.status.error_message();
    EXPECT_TRUE(r.received.empty()) << authorization;
    EXPECT_EQ(r.status.error_message().find(Token()), std::string::npos);
  }
  EXPECT_EQ(app_.manager().groups_up(), 0);
  EXPECT_EQ(State(job), ::magi::v1::JOB_STATE_QUEUED);
  EXPECT_EQ(app_.metrics().WorkerAuthFailures("missing").Value(), 1);
  EXPECT_EQ(app_.metrics().WorkerAuthFailures("invalid").Value(), 1);
  EXPECT_EQ(app_.metrics().WorkerAuthFailures("malformed").Value(), 2);

  // A group with a token file it cannot use is refused by the link itself.
  {
    WorkerLinkOptions lo;
    lo.server = worker_addr_;
    WorkerLink no_token(lo, &runner_);
    absl::Status s = no_token.Run();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("--worker_token_file"), std::string::npos) << s;
  }
  // A real group whose token is wrong keeps being refused and never runs the job.
  {
    std::string wrong = (dir_ / "wrong_token").string();
    std::ofstream(wrong) << "not-the-server-token-at-all\n";
    WorkerLinkOptions lo;
    lo.server = worker_addr_;
    lo.token_file = wrong;
    lo.reconnect = false;
    WorkerLink link(lo, &runner_);
    EXPECT_EQ(link.Run().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(link.sessions(), 0);
    EXPECT_EQ(State(job), ::magi::v1::JOB_STATE_QUEUED);
  }

  StartWorker(app_.worker_token_file());
  for (int i = 0; i < 1000 && State(job) != ::magi::v1::JOB_STATE_SUCCEEDED; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(State(job), ::magi::v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(app_.manager().groups_up(), 1);
}

TEST_F(WorkerPoolAuthTest, OwnWorkerListenerKeepsWorkerPoolOffThePublicPort) {
  Start("127.0.0.1:0");
  ASSERT_NE(app_.worker_port(), app_.grpc_port());
  // The public port does not serve the worker protocol, even with the right token.
  ImpostorResult on_public = PoseAsGroup(public_addr_, std::string(kWorkerTokenScheme) + Token());
  EXPECT_EQ(on_public.status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << on_public.status.error_message();
  EXPECT_TRUE(on_public.received.empty());
  // The worker port does not serve the public API.
  {
    auto worker_side = ::magi::v1::VideoGeneration::NewStub(
        grpc::CreateChannel(worker_addr_, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ::magi::v1::SubmitResponse resp;
    EXPECT_EQ(worker_side->Submit(&ctx, SmallRequest(), &resp).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  // The worker port still requires the token.
  EXPECT_EQ(PoseAsGroup(worker_addr_, "").status.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  const std::string job = Submit();
  StartWorker(app_.worker_token_file());
  for (int i = 0; i < 1000 && State(job) != ::magi::v1::JOB_STATE_SUCCEEDED; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(State(job), ::magi::v1::JOB_STATE_SUCCEEDED);
}

TEST_F(WorkerPoolAuthTest, StartRefusesAnUnusableTokenFileAndABadWorkerListen) {
  {
    ServerApp app;
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.http_listen = "";
    o.jobs.state_dir = dir_.string();
    o.worker_token_file = (dir_ / "missing_token").string();
    absl::Status s = app.Start(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("--worker_token_file"), std::string::npos) << s;
  }
  {
    ServerApp app;
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.http_listen = "";
    o.jobs.state_dir = (dir_ / "b").string();
    o.worker_listen = "not an address";
    absl::Status s = app.Start(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("--worker_listen"), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace magi
