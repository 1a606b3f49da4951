// HttpEndpoints: the plain-HTTP side of magi-server for load balancers and Prometheus:
//   GET /healthz  200 "ok" while the process serves at all (liveness)
//   GET /readyz   200 "ready", or 503 "draining" once SIGTERM stopped admission (readiness)
//   GET /metrics  Prometheus text exposition of ServerMetrics
// HEAD works on each; other methods get 405; any other path 404 (base/http_server.h).
//
// Thread safety: Start/Stop from one thread; handlers run on the HTTP server's thread and only read
// thread-safe state. Does not own the metrics or the readiness callback's state.
#ifndef MAGI_SERVER_HTTP_ENDPOINTS_H_
#define MAGI_SERVER_HTTP_ENDPOINTS_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace magi {

class HttpServer;
class ServerMetrics;

class HttpEndpoints {
 public:
  HttpEndpoints(const ServerMetrics* metrics, std::function<bool()> ready);
  ~HttpEndpoints();
  HttpEndpoints(const HttpEndpoints&) = delete;
  HttpEndpoints& operator=(const HttpEndpoints&) = delete;

  // Listens on `address` ("127.0.0.1:9090"; port 0 picks one). Returns the bound port, or
  // InvalidArgument naming --http-listen.
  absl::StatusOr<int> Start(const std::string& address);
  void Stop();

 private:
  const ServerMetrics* metrics_;
  std::function<bool()> ready_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace magi

#endif  // MAGI_SERVER_HTTP_ENDPOINTS_H_
