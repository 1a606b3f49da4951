#include "server/http_endpoints.h"

#include <CivetServer.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/server_metrics.h"

namespace magi {
namespace {

// `head`: a HEAD request gets the headers only. `extra` is more header lines ("Name: v\r\n").
void Respond(mg_connection* conn, int code, const char* reason, const std::string& type, const std::string& body,
             bool head = false, const std::string& extra = "") {
  // The header is formatted here: civetweb's mg_printf mishandles some conversions (%zu).
  std::string header = absl::StrCat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Type: ", type,
                                    "\r\nContent-Length: ", body.size(), "\r\n", extra,
                                    "Connection: close\r\n\r\n");
  mg_write(conn, header.data(), header.size());
  if (!head) mg_write(conn, body.data(), body.size());
}

// Every request civetweb receives lands here: the handler is registered for the pattern "**",
// so civetweb never falls through to its own file serving and error pages (with no
// document_root, that path overflowed the worker thread's stack in Debian's civetweb 1.15 and
// killed the server on any unknown path). Known paths answer GET and HEAD; other methods get
// 405 with Allow; every other path gets 404.
class Router final : public CivetHandler {
 public:
  using Fn = std::function<void(mg_connection*, bool head)>;
  void Add(std::string path, Fn fn) { routes_.emplace_back(std::move(path), std::move(fn)); }

  bool handleGet(CivetServer*, mg_connection* c) override { return Serve(c, false); }
  bool handleHead(CivetServer*, mg_connection* c) override { return Serve(c, true); }
  bool handlePost(CivetServer*, mg_connection* c) override { return NotAllowed(c); }
  bool handlePut(CivetServer*, mg_connection* c) override { return NotAllowed(c); }
  bool handleDelete(CivetServer*, mg_connection* c) override { return NotAllowed(c); }
  bool handleOptions(CivetServer*, mg_connection* c) override { return NotAllowed(c); }
  bool handlePatch(CivetServer*, mg_connection* c) override { return NotAllowed(c); }

 private:
  const Fn* Find(mg_connection* c) const {
    const mg_request_info* info = mg_get_request_info(c);
    const char* uri = info != nullptr && info->local_uri != nullptr ? info->local_uri : "";
    for (const auto& [path, fn] : routes_) {
      if (path == uri) return &fn;
    }
    return nullptr;
  }
  bool Serve(mg_connection* c, bool head) {
    if (const Fn* fn = Find(c)) {
      (*fn)(c, head);
    } else {
      NotFound(c, head);
    }
    return true;
  }
  bool NotAllowed(mg_connection* c) {
    if (Find(c) == nullptr) {
      NotFound(c, false);
    } else {
      Respond(c, 405, "Method Not Allowed", "text/plain", "method not allowed; use GET or HEAD\n", false,
              "Allow: GET, HEAD\r\n");
    }
    return true;
  }
  void NotFound(mg_connection* c, bool head) const {
    std::string known;
    for (const auto& route : routes_) known += (known.empty() ? "" : ", ") + route.first;
    Respond(c, 404, "Not Found", "text/plain", absl::StrCat("not found; this port serves ", known, "\n"), head);
  }

  std::vector<std::pair<std::string, Fn>> routes_;
};

}  // namespace

HttpEndpoints::HttpEndpoints(const ServerMetrics* metrics, std::function<bool()> ready)
    : metrics_(metrics), ready_(std::move(ready)) {}

HttpEndpoints::~HttpEndpoints() { Stop(); }

absl::StatusOr<int> HttpEndpoints::Start(const std::string& address) {
  auto router = std::make_unique<Router>();
  router->Add("/healthz", [](mg_connection* c, bool head) { Respond(c, 200, "OK", "text/plain", "ok\n", head); });
  router->Add("/readyz", [this](mg_connection* c, bool head) {
    if (ready_ && ready_()) {
      Respond(c, 200, "OK", "text/plain", "ready\n", head);
    } else {
      Respond(c, 503, "Service Unavailable", "text/plain", "draining\n", head);
    }
  });
  router->Add("/metrics", [this](mg_connection* c, bool head) {
    Respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", metrics_ ? metrics_->Serialize() : std::string(),
            head);
  });
  router_ = std::move(router);
  std::vector<std::string> options = {"listening_ports", address, "num_threads", "2"};
  try {
    server_ = std::make_unique<CivetServer>(options);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("--http-listen ", address, ": cannot listen: ", e.what()));
  }
  server_->addHandler("**", router_.get());
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
