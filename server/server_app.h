// ServerApp: one magi-server instance in a process: metrics, the JobManager (store +
// scheduler), the public and worker gRPC services with grpc.health.v1 and reflection, and
// the HTTP endpoints. magi-server's main, the tests and the benchmark all run it.
//
// Lifecycle: Start -> (serving) -> Drain (health NOT_SERVING, /readyz 503, admission
// stopped, running jobs finish up to a timeout) -> Shutdown. Jobs still queued or running
// at shutdown stay persisted and are recovered by the next start on the same state dir.
//
// Thread safety: Start/Drain/Shutdown from one controlling thread. Owns everything it
// creates; not copyable.
#ifndef MAGI_SERVER_SERVER_APP_H_
#define MAGI_SERVER_SERVER_APP_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/job_manager.h"

namespace grpc {
class Server;
}

namespace magi {

class ServerMetrics;
class HttpEndpoints;
class VideoGenerationService;
class WorkerPoolService;

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // gRPC; port 0 picks a free port
  std::string http_listen = "127.0.0.1:0"; // /healthz /readyz /metrics; empty = off
  int max_message_bytes = 64 << 20;        // requests carry images / prefix videos
  JobManagerOptions jobs;
};

class ServerApp {
 public:
  ServerApp();
  ~ServerApp();
  ServerApp(const ServerApp&) = delete;
  ServerApp& operator=(const ServerApp&) = delete;

  // Opens the store, recovers jobs, starts listening. Errors name the flag at fault.
  absl::Status Start(const ServerOptions& options);
  // Stops admission and waits up to `timeout` for running jobs; true if all finished.
  bool Drain(absl::Duration timeout);
  // Ends all streams and stops serving (waits at most `grace` for in-flight RPCs).
  void Shutdown(absl::Duration grace = absl::Seconds(2));

  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }
  JobManager& manager() { return *manager_; }
  ServerMetrics& metrics() { return *metrics_; }

 private:
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<JobManager> manager_;
  std::unique_ptr<VideoGenerationService> public_service_;
  std::unique_ptr<WorkerPoolService> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpEndpoints> http_;
  int grpc_port_ = 0;
  int http_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace magi

#endif  // MAGI_SERVER_SERVER_APP_H_
