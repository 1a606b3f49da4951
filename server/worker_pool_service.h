// WorkerPoolService: the internal magi.internal.v1.WorkerPool gRPC service. Each Connect
// stream is one worker group: the first message must be Register; after that the stream
// carries assignments and cancellations down and chunks, progress, heartbeats and results
// up. When the stream ends for any reason the JobManager re-queues the group's jobs.
// Every call must carry a worker token (server/token_auth.h): one without, or with a wrong
// one, ends at once with UNAUTHENTICATED, before it could register or receive anything.
//
// Thread safety: gRPC calls it from many threads; state lives in the JobManager, which
// must outlive the gRPC server. Not owning.
#ifndef MAGI_SERVER_WORKER_POOL_SERVICE_H_
#define MAGI_SERVER_WORKER_POOL_SERVICE_H_

#include "magi/internal/v1/worker_pool.grpc.pb.h"

namespace magi {

class JobManager;
class TokenAuthenticator;

class WorkerPoolService final : public ::magi::internal::v1::WorkerPool::CallbackService {
 public:
  // Neither is owned; both must outlive the gRPC server.
  WorkerPoolService(JobManager* manager, TokenAuthenticator* auth) : manager_(manager), auth_(auth) {}

  grpc::ServerBidiReactor<::magi::internal::v1::WorkerMessage, ::magi::internal::v1::ServerMessage>*
  Connect(grpc::CallbackServerContext* context) override;

 private:
  JobManager* manager_;
  TokenAuthenticator* auth_;
};

}  // namespace magi

#endif  // MAGI_SERVER_WORKER_POOL_SERVICE_H_
