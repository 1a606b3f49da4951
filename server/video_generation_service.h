// VideoGenerationService: the public magi.v1.VideoGeneration gRPC service, a thin adapter
// from the callback API onto the JobManager. Streams (Generate, Watch, GetVideo) are
// reactors, not threads: a stream ends when the job ends, when the client cancels or its
// deadline passes (the job itself goes on; Watch re-attaches), or at shutdown.
//
// Thread safety: gRPC calls it from many threads; all state lives in the JobManager.
// Does not own the manager, which must outlive the gRPC server.
#ifndef MAGI_SERVER_VIDEO_GENERATION_SERVICE_H_
#define MAGI_SERVER_VIDEO_GENERATION_SERVICE_H_

#include "magi/v1/video_generation.grpc.pb.h"

namespace magi {

class JobManager;

class VideoGenerationService final : public ::magi::v1::VideoGeneration::CallbackService {
 public:
  explicit VideoGenerationService(JobManager* manager) : manager_(manager) {}

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

 private:
  JobManager* manager_;
};

}  // namespace magi

#endif  // MAGI_SERVER_VIDEO_GENERATION_SERVICE_H_
