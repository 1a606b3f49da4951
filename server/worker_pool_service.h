// WorkerPoolService: the internal magi.internal.v1.WorkerPool gRPC service. Each Connect
// stream is one worker group: the first message must be Register; after that the stream
// carries assignments and cancellations down and chunks, progress, heartbeats and results
// up. When the stream ends for any reason the JobManager re-queues the group's jobs.
//
// Thread safety: gRPC calls it from many threads; state lives in the JobManager, which
// must outlive the gRPC server. Not owning.
#ifndef MAGI_SERVER_WORKER_POOL_SERVICE_H_
#define MAGI_SERVER_WORKER_POOL_SERVICE_H_

#include "magi/internal/v1/worker_pool.grpc.pb.h"

namespace magi {

class JobManager;

class WorkerPoolService final : public ::magi::internal::v1::WorkerPool::CallbackService {
 public:
  explicit WorkerPoolService(JobManager* manager) : manager_(manager) {}

  grpc::ServerBidiReactor<::magi::internal::v1::WorkerMessage, ::magi::internal::v1::ServerMessage>*
  Connect(grpc::CallbackServerContext* context) override;

 private:
  JobManager* manager_;
};

}  // namespace magi

#endif  // MAGI_SERVER_WORKER_POOL_SERVICE_H_
