// ServerApp: one magi-server instance in a process: metrics, the JobManager (store +
// scheduler), the public and worker gRPC services with grpc.health.v1 and reflection, and
// the HTTP endpoints and the OpenAI-compatible HTTP API. magi-server's main, the tests and the benchmark all run it.
// The worker service (magi.internal.v1.WorkerPool) always requires a worker token
// (server/token_auth.h); it is served on the public port or on its own listener.
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
#include "server/api_http_server.h"
#include "server/job_manager.h"

namespace grpc {
class Server;
}

namespace magi {

class ServerMetrics;
class HttpEndpoints;
class VideoGenerationService;
class WorkerPoolService;
class TokenAuthenticator;

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // gRPC; port 0 picks a free port
  std::string http_listen = "127.0.0.1:0"; // /healthz /readyz /metrics; empty = off
  // WorkerPool's own listener, where it alone is served (port 0 picks a free port);
  // empty = WorkerPool is served on `listen` next to the public API.
  std::string worker_listen;
  // The worker tokens (base/worker_token.h). Empty: a fresh random token is written to
  // <state_dir>/worker_token (mode 0600) at every start; worker_token_file() names it.
  std::string worker_token_file;
  // The client tokens ("<token> <tenant>" lines, base/worker_token.h; re-read when it
  // changes). Set: every magi.v1 RPC and OpenAI API request needs a client token and sees
  // only its tenant's jobs. Empty: no client authentication, one anonymous tenant.
  std::string client_tokens_file;
  // TLS for the public ports, gRPC (`listen`) and the OpenAI API (`api.listen`, HTTPS/WSS):
  // PEM files of the server's certificate chain and private key; both or neither. With
  // tls_client_ca (a PEM bundle) clients must present a certificate signed by it (mTLS).
  // Start copies them into the API's options (api.tls is overwritten). The worker listener
  // and http_listen stay plaintext (use worker_listen).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  int max_message_bytes = 64 << 20;        // requests carry images / prefix videos
  // The OpenAI-compatible HTTP API (server/api_http_server.h); api.listen empty = off;
  // its TLS comes from tls_cert/tls_key/tls_client_ca above.
  ApiServerOptions api;
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
  // Where WorkerPool is served: grpc_port() unless options.worker_listen was set.
  int worker_port() const { return worker_port_; }
  // The token file workers must present a token of (given or generated); set by Start.
  const std::string& worker_token_file() const { return worker_token_file_; }
  int http_port() const { return http_port_; }
  // The OpenAI-compatible API's port; 0 when options.api.listen was empty.
  int api_port() const { return api_port_; }
  JobManager& manager() { return *manager_; }
  ServerMetrics& metrics() { return *metrics_; }

 private:
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<JobManager> manager_;
  std::unique_ptr<VideoGenerationService> public_service_;
  std::unique_ptr<TokenAuthenticator> worker_auth_;
  std::unique_ptr<TokenAuthenticator> client_auth_;  // null without client_tokens_file
  std::unique_ptr<WorkerPoolService> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> worker_server_;  // only with a separate worker_listen
  std::unique_ptr<HttpEndpoints> http_;
  std::unique_ptr<ApiHttpServer> api_;
  int grpc_port_ = 0;
  int http_port_ = 0;
  int api_port_ = 0;
  int worker_port_ = 0;
  std::string worker_token_file_;
  bool shut_down_ = false;
};

}  // namespace magi

#endif  // MAGI_SERVER_SERVER_APP_H_
