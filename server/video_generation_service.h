// VideoGenerationService: the public magi.v1.VideoGeneration gRPC service, a thin adapter
// from the callback API onto the JobManager. Streams (Generate, Watch, GetVideo) are
// reactors, not threads: a stream ends when the job ends, when the client cancels or its
// deadline passes (the job itself goes on; Watch re-attaches), or at shutdown.
//
// With a client authenticator (--client_tokens_file), every call must carry
// `authorization: Bearer <client token>` metadata (else UNAUTHENTICATED, before the request
// is looked at) and acts for the token's tenant: it submits jobs owned by that tenant and
// sees only them. Without one, every call acts for kAnonymousTenant.
//
// Thread safety: gRPC calls it from many threads; all state lives in the JobManager.
// Does not own the manager or the authenticator, which must outlive the gRPC server.
#ifndef MAGI_SERVER_VIDEO_GENERATION_SERVICE_H_
#define MAGI_SERVER_VIDEO_GENERATION_SERVICE_H_

#include <string>

#include "absl/status/statusor.h"
#include "magi/v1/video_generation.grpc.pb.h"

namespace magi {

class JobManager;
class TokenAuthenticator;

class VideoGenerationService final : public ::magi::v1::VideoGeneration::CallbackService {
 public:
  // `client_auth` null: no client authentication (one anonymous tenant).
  VideoGenerationService(JobManager* manager, TokenAuthenticator* client_auth)
      : manager_(manager), client_auth_(client_auth) {}

  grpc::ServerWriteReactor<::magi::v1::GenerateEvent>* Generate(
      grpc::CallbackServerContext* context, const ::magi::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* context,
                                   const ::magi::v1::GenerateRequest* request,
                                   ::magi::v1::SubmitResponse* response) override;
  grpc::ServerWriteReactor<::magi::v1::GenerateEvent>* Watch(
      grpc::CallbackServerContext* context, const ::magi::v1::WatchRequest* request) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* context,
                                   const ::magi::v1::CancelRequest* request,
                                   ::magi::v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const ::magi::v1::GetJobRequest* request,
                                   ::magi::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const ::magi::v1::ListJobsRequest* request,
                                     ::magi::v1::ListJobsResponse* response) override;
  grpc::ServerWriteReactor<::magi::v1::VideoData>* GetVideo(
      grpc::CallbackServerContext* context, const ::magi::v1::GetVideoRequest* request) override;
  // Answers when the job's group uses the change (JobManager::UpdatePrompt), not before.
  grpc::ServerUnaryReactor* UpdatePrompt(grpc::CallbackServerContext* context,
                                         const ::magi::v1::UpdatePromptRequest* request,
                                         ::magi::v1::UpdatePromptResponse* response) override;

 private:
  // What every RPC checks first: the caller's tenant (or UNAUTHENTICATED), then that the
  // request's string fields are UTF-8 (or INVALID_ARGUMENT naming the field).
  absl::StatusOr<std::string> Caller(grpc::CallbackServerContext* context,
                                     const google::protobuf::Message& request) const;
  // The caller's tenant, or UNAUTHENTICATED.
  absl::StatusOr<std::string> TenantOf(grpc::CallbackServerContext* context) const;

  JobManager* manager_;
  TokenAuthenticator* client_auth_;
};

}  // namespace magi

#endif  // MAGI_SERVER_VIDEO_GENERATION_SERVICE_H_
