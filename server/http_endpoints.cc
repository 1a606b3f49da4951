#include "server/http_endpoints.h"

#include "base/http_server.h"
#include "server/server_metrics.h"

namespace magi {

HttpEndpoints::HttpEndpoints(const ServerMetrics* metrics, std::function<bool()> ready)
    : metrics_(metrics), ready_(std::move(ready)) {}

HttpEndpoints::~HttpEndpoints() { Stop(); }

absl::StatusOr<int> HttpEndpoints::Start(const std::string& address) {
  server_ = std::make_unique<HttpServer>();
  server_->Add("/healthz", [] { return HttpResponse{200, "ok\n"}; });
  server_->Add("/readyz", [this] {
    if (ready_ && ready_()) return HttpResponse{200, "ready\n"};
    return HttpResponse{503, "draining\n"};
  });
  server_->Add("/metrics", [this] {
    return HttpResponse{200, metrics_ ? metrics_->Serialize() : std::string(),
                        "text/plain; version=0.0.4; charset=utf-8"};
  });
  return server_->Start(address, "--http-listen");
}

void HttpEndpoints::Stop() {
  if (server_) {
    server_->Stop();
    server_.reset();
  }
}

}  // namespace magi
