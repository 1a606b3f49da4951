#include "server/worker_pool_service.h"

#include <memory>
#include <mutex>
#include <string>

#include "server/job_manager.h"
#include "server/outbound_queue.h"
#include "server/token_auth.h"
#include "base/worker_token.h"

namespace magi {
namespace {

using ::magi::internal::v1::ServerMessage;
using ::magi::internal::v1::WorkerMessage;

class GroupStream final : public grpc::ServerBidiReactor<WorkerMessage, ServerMessage> {
 public:
  class Link final : public WorkerGroupLink {
   public:
    explicit Link(GroupStream* stream)
        : queue([stream](const ServerMessage* m) { stream->StartWrite(m); },
                [stream](const grpc::Status& s) { stream->Finish(s); }) {}
    void Send(const ServerMessage& message) override { queue.Push(message); }
    void Close(const absl::Status& status) override { queue.Close(ToGrpcStatus(status)); }
    OutboundQueue<ServerMessage> queue;
  };

  explicit GroupStream(JobManager* manager) : manager_(manager), link_(std::make_shared<Link>(this)) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the group closed its side or the connection broke
      Lost(absl::UnavailableError("worker stream closed"));
      link_->queue.Close(grpc::Status::OK);
      return;
    }
    std::string key;
    {
      std::lock_guard<std::mutex> lock(mu_);
      key = key_;
    }
    if (key.empty()) {
      if (in_.msg_case() != WorkerMessage::kRegister) {
        link_->queue.Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                        "the first message on WorkerPool.Connect must be register"));
        return;
      }
      auto registered = manager_->RegisterGroup(in_.register_(), link_);
      if (!registered.ok()) {
        link_->queue.Close(ToGrpcStatus(registered.status()));
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      key_ = *registered;
    } else {
      manager_->OnWorkerMessage(key, in_);
    }
    StartRead(&in_);
  }
  void OnWriteDone(bool ok) override { link_->queue.WriteDone(ok); }
  void OnCancel() override {
    Lost(absl::UnavailableError("worker stream cancelled"));
    link_->queue.Abort(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
  }
  void OnDone() override {
    Lost(absl::UnavailableError("worker stream done"));
    link_->queue.Detach();
    delete this;
  }

 private:
  void Lost(const absl::Status& why) {
    std::string key;
    {
      std::lock_guard<std::mutex> lock(mu_);
      key = key_;
    }
    if (!key.empty()) manager_->OnGroupLost(key, why);
  }

  JobManager* manager_;
  std::shared_ptr<Link> link_;
  std::mutex mu_;
  std::string key_;
  WorkerMessage in_;
};

// A call that failed authentication: finished at once, nothing read, nothing written.
class RefusedStream final : public grpc::ServerBidiReactor<WorkerMessage, ServerMessage> {
 public:
  explicit RefusedStream(const absl::Status& why) { Finish(ToGrpcStatus(why)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerBidiReactor<WorkerMessage, ServerMessage>* WorkerPoolService::Connect(
    grpc::CallbackServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kWorkerTokenMetadataKey);
  absl::string_view authorization;
  if (it != metadata.end()) authorization = absl::string_view(it->second.data(), it->second.size());
  if (absl::Status s = auth_->Check(authorization, context->peer()); !s.ok()) {
    return new RefusedStream(s);
  }
  return new GroupStream(manager_);
}

}  // namespace magi
