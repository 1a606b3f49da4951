#include "server/http_endpoints.h"

#include <CivetServer.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/server_metrics.h"

namespace magi {
namespace {

void Respond(mg_connection* conn, int code, const char* reason, const std::string& type,
             const std::string& body) {
  // The header is formatted here: civetweb's mg_printf mishandles some conversions (%zu).
  std::string head = absl::StrCat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Type: ", type,
                                  "\r\nContent-Length: ", body.size(),
                                  "\r\nConnection: close\r\n\r\n");
  mg_write(conn, head.data(), head.size());
  mg_write(conn, body.data(), body.size());
}

class TextHandler final : public CivetHandler {
 public:
  explicit TextHandler(std::function<void(mg_connection*)> fn) : fn_(std::move(fn)) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    fn_(conn);
    return true;
  }

 private:
  std::function<void(mg_connection*)> fn_;
};

}  // namespace

HttpEndpoints::HttpEndpoints(const ServerMetrics* metrics, std::function<bool()> ready)
    : metrics_(metrics), ready_(std::move(ready)) {}

HttpEndpoints::~HttpEndpoints() { Stop(); }

absl::StatusOr<int> HttpEndpoints::Start(const std::string& address) {
  healthz_ = std::make_unique<TextHandler>(
      [](mg_connection* c) { Respond(c, 200, "OK", "text/plain", "ok\n"); });
  readyz_ = std::make_unique<TextHandler>([this](mg_connection* c) {
    if (ready_ && ready_()) {
      Respond(c, 200, "OK", "text/plain", "ready\n");
    } else {
      Respond(c, 503, "Service Unavailable", "text/plain", "draining\n");
    }
  });
  metrics_handler_ = std::make_unique<TextHandler>([this](mg_connection* c) {
    Respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
            metrics_ ? metrics_->Serialize() : std::string());
  });
  std::vector<std::string> options = {"listening_ports", address, "num_threads", "2"};
  try {
    server_ = std::make_unique<CivetServer>(options);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("--http-listen ", address, ": cannot listen: ", e.what()));
  }
  server_->addHandler("/healthz", healthz_.get());
  server_->addHandler("/readyz", readyz_.get());
  server_->addHandler("/metrics", metrics_handler_.get());
  std::vector<int> ports = server_->getListeningPorts();
  if (ports.empty()) return absl::InternalError("--http-listen: no listening port");
  return ports[0];
}

void HttpEndpoints::Stop() {
  if (server_) {
    server_->close();
    server_.reset();
  }
}

}  // namespace magi
