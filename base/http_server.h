// HttpServer: a small plain-HTTP responder for probes and metrics (magi-server's
// /healthz, /readyz, /metrics; magi-worker's /healthz, /readyz). Each route is an exact
// path whose handler returns the whole response; GET and HEAD work on each, other methods
// get 405 with Allow, any other path 404 listing the known ones. POSIX sockets, one
// connection at a time on one thread (probes and scrapes are small; a client silent for 2 s
// is dropped); up to 16 KiB of request headers, no body.
//
// Thread safety: Add/Start/Stop from one thread; handlers run on the server's thread and
// must only read thread-safe state.
#ifndef MAGI_BASE_HTTP_SERVER_H_
#define MAGI_BASE_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace magi {

struct HttpResponse {
  int code = 200;  // 200, 404, 405, 500 or 503 (the reason phrase follows the code)
  std::string body;
  std::string content_type = "text/plain";
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse()>;

  HttpServer();
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Adds a route before Start().
  void Add(std::string path, Handler handler);
  // Listens on `address` ("127.0.0.1:9090", "0.0.0.0:8081"; port 0 picks one). Returns the
  // bound port, or InvalidArgument naming `flag` and the address.
  absl::StatusOr<int> Start(const std::string& address, const std::string& flag);
  void Stop();

 private:
  void Loop();
  void Serve(int fd);

  std::vector<std::pair<std::string, Handler>> routes_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace magi

#endif  // MAGI_BASE_HTTP_SERVER_H_
