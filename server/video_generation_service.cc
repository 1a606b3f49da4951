#include "server/video_generation_service.h"

#include <cstdio>
#include <functional>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "proto/utf8_lenient.h"
#include "server/job_manager.h"
#include "server/outbound_queue.h"
#include "server/token_auth.h"

namespace magi {
namespace {

using ::magi::v1::GenerateEvent;

// One event stream (Generate or Watch). The queue is the JobSubscriber the manager holds.
class EventStream final : public grpc::ServerWriteReactor<GenerateEvent> {
 public:
  class Subscriber final : public JobSubscriber {
   public:
    explicit Subscriber(EventStream* stream)
        : queue([stream](const GenerateEvent* e) { stream->StartWrite(e); },
                [stream](const grpc::Status& s) { stream->Finish(s); }) {}
    void OnEvent(const GenerateEvent& event) override { queue.Push(event); }
    void OnClose(const absl::Status& status) override { queue.Close(ToGrpcStatus(status)); }
    // The feed hands this stream at most its window of unwritten events and sends more
    // (reading stored chunks from disk) as writes complete.
    bool EnableFlowControl(std::function<void()> written) override {
      written_ = std::move(written);
      return true;
    }
    void Written() {
      if (written_) written_();
    }
    OutboundQueue<GenerateEvent> queue;

   private:
    std::function<void()> written_;  // set before the first event, then only read
  };

  explicit EventStream(JobManager* manager)
      : manager_(manager), subscriber_(std::make_shared<Subscriber>(this)) {}

  std::shared_ptr<Subscriber> subscriber() { return subscriber_; }
  void FinishWith(const absl::Status& status) { subscriber_->queue.Close(ToGrpcStatus(status)); }

  void OnWriteDone(bool ok) override {
    subscriber_->queue.WriteDone(ok);
    if (ok) subscriber_->Written();
  }
  void OnCancel() override {
    manager_->Unwatch(subscriber_.get());
    subscriber_->queue.Abort(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled by the client"));
  }
  void OnDone() override {
    manager_->Unwatch(subscriber_.get());
    subscriber_->queue.Detach();
    delete this;
  }

 private:
  JobManager* manager_;
  std::shared_ptr<Subscriber> subscriber_;
};

// Streams the final MP4 in 1 MiB messages.
class VideoStream final : public grpc::ServerWriteReactor<::magi::v1::VideoData> {
 public:
  explicit VideoStream(absl::StatusOr<std::string> path) {
    if (!path.ok()) {
      Finish(ToGrpcStatus(path.status()));
      return;
    }
    file_ = std::fopen(path->c_str(), "rb");
    if (!file_) {
      Finish(grpc::Status(grpc::StatusCode::DATA_LOSS, absl::StrCat("video file ", *path, " is missing")));
      return;
    }
    std::fseek(file_, 0, SEEK_END);
    total_ = std::ftell(file_);
    std::fseek(file_, 0, SEEK_SET);
    Next();
  }
  ~VideoStream() override {
    if (file_) std::fclose(file_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client stream broken"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    std::string buf(1 << 20, '\0');
    size_t n = std::fread(buf.data(), 1, buf.size(), file_);
    if (n == 0) {
      Finish(offset_ == total_ ? grpc::Status::OK
                               : grpc::Status(grpc::StatusCode::DATA_LOSS, "video file shrank while reading"));
      return;
    }
    buf.resize(n);
    msg_.set_offset(offset_);
    msg_.set_total_bytes(total_);
    msg_.set_data(std::move(buf));
    offset_ += static_cast<int64_t>(n);
    StartWrite(&msg_);
  }
  std::FILE* file_ = nullptr;
  int64_t total_ = 0;
  int64_t offset_ = 0;
  ::magi::v1::VideoData msg_;
};

// Requests arrive parsed without protobuf's UTF-8 check (proto/grpc_serialization_traits.h);
// this is where a string field that is not UTF-8 is refused, by name.
absl::Status CheckUtf8(const google::protobuf::Message& request) {
  if (std::optional<std::string> field = FirstInvalidUtf8Field(request)) {
    return absl::InvalidArgumentError(absl::StrCat(*field, ": is not valid UTF-8 (string fields must be UTF-8)"));
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* context, const absl::Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

absl::StatusOr<std::string> VideoGenerationService::Caller(grpc::CallbackServerContext* context,
                                                            const google::protobuf::Message& request) const {
  auto tenant = TenantOf(context);
  if (!tenant.ok()) return tenant.status();
  MAGI_RETURN_IF_ERROR(CheckUtf8(request));
  return tenant;
}

absl::StatusOr<std::string> VideoGenerationService::TenantOf(grpc::CallbackServerContext* context) const {
  if (client_auth_ == nullptr) return std::string(kAnonymousTenant);
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kWorkerTokenMetadataKey);
  absl::string_view authorization;
  if (it != metadata.end()) authorization = absl::string_view(it->second.data(), it->second.size());
  return client_auth_->Authenticate(authorization, context->peer());
}

grpc::ServerWriteReactor<GenerateEvent>* VideoGenerationService::Generate(
    grpc::CallbackServerContext* context, const ::magi::v1::GenerateRequest* request) {
  auto* stream = new EventStream(manager_);
  auto tenant = Caller(context, *request);
  if (!tenant.ok()) {
    stream->FinishWith(tenant.status());
    return stream;
  }
  auto job = manager_->Submit(*tenant, *request);
  if (!job.ok()) {
    stream->FinishWith(job.status());
    return stream;
  }
  if (auto s = manager_->Watch(*tenant, job->job_id(), 0, stream->subscriber(), /*accepted_first=*/true);
      !s.ok()) {
    stream->FinishWith(s);
  }
  return stream;
}

grpc::ServerUnaryReactor* VideoGenerationService::Submit(grpc::CallbackServerContext* context,
                                                         const ::magi::v1::GenerateRequest* request,
                                                         ::magi::v1::SubmitResponse* response) {
  auto tenant = Caller(context, *request);
  if (!tenant.ok()) return Reply(context, tenant.status());
  auto job = manager_->Submit(*tenant, *request);
  if (job.ok()) *response->mutable_job() = std::move(*job);
  return Reply(context, job.status());
}

grpc::ServerWriteReactor<GenerateEvent>* VideoGenerationService::Watch(
    grpc::CallbackServerContext* context, const ::magi::v1::WatchRequest* request) {
  auto* stream = new EventStream(manager_);
  auto tenant = Caller(context, *request);
  if (!tenant.ok()) {
    stream->FinishWith(tenant.status());
    return stream;
  }
  if (auto s = manager_->Watch(*tenant, request->job_id(), request->from_chunk(), stream->subscriber(),
                               /*accepted_first=*/false);
      !s.ok()) {
    stream->FinishWith(s);
  }
  return stream;
}

grpc::ServerUnaryReactor* VideoGenerationService::Cancel(grpc::CallbackServerContext* context,
                                                         const ::magi::v1::CancelRequest* request,
                                                         ::magi::v1::Job* response) {
  auto tenant = Caller(context, *request);
  if (!tenant.ok()) return Reply(context, tenant.status());
  auto job = manager_->Cancel(*tenant, request->job_id());
  if (job.ok()) *response = std::move(*job);
  return Reply(context, job.status());
}

grpc::ServerUnaryReactor* VideoGenerationService::GetJob(grpc::CallbackServerContext* context,
                                                         const ::magi::v1::GetJobRequest* request,
                                                         ::magi::v1::Job* response) {
  auto tenant = Caller(context, *request);
  if (!tenant.ok()) return Reply(context, tenant.status());
  auto job = manager_->GetJob(*tenant, request->job_id());
  if (job.ok()) *response = std::move(*job);
  return Reply(context, job.status());
}

grpc::ServerUnaryReactor* VideoGenerationService::ListJobs(grpc::CallbackServerContext* context,
                                                           const ::magi::v1::ListJobsRequest* request,
                                                           ::magi::v1::ListJobsResponse* response) {
  auto tenant = Caller(context, *request);
  if (!tenant.ok()) return Reply(context, tenant.status());
  auto page = manager_->ListJobs(*tenant, *request);
  if (page.ok()) *response = std::move(*page);
  return Reply(context, page.status());
}

grpc::ServerWriteReactor<::magi::v1::VideoData>* VideoGenerationService::GetVideo(
    grpc::CallbackServerContext* context, const ::magi::v1::GetVideoRequest* request) {
  auto tenant = Caller(context, *request);
  if (!tenant.ok()) return new VideoStream(tenant.status());
  return new VideoStream(manager_->FinalVideoPath(*tenant, request->job_id()));
}

grpc::ServerUnaryReactor* VideoGenerationService::UpdatePrompt(grpc::CallbackServerContext* context,
                                                               const ::magi::v1::UpdatePromptRequest* request,
                                                               ::magi::v1::UpdatePromptResponse* response) {
  auto tenant = Caller(context, *request);
  if (!tenant.ok()) return Reply(context, tenant.status());
  auto* reactor = context->DefaultReactor();
  manager_->UpdatePrompt(*tenant, request->job_id(), request->text(),
                         [reactor, response](absl::StatusOr<JobManager::PromptUpdateResult> r) {
                           if (r.ok()) {
                             response->set_from_chunk(r->from_chunk);
                             *response->mutable_job() = std::move(r->job);
                           }
                           reactor->Finish(ToGrpcStatus(r.status()));
                         });
  return reactor;
}

}  // namespace magi
