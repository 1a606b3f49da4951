#include "worker/main/worker_health.h"

#include "absl/strings/str_cat.h"

namespace magi {

WorkerHealth::WorkerHealth() = default;

WorkerHealth::~WorkerHealth() {
  if (http_) http_->Stop();
}

void WorkerHealth::SetLoaded() {
  std::lock_guard<std::mutex> lock(mu_);
  loaded_ = true;
}

void WorkerHealth::SetRegistered(bool registered) {
  std::lock_guard<std::mutex> lock(mu_);
  registered_ = registered;
}

void WorkerHealth::SetDraining() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
}

void WorkerHealth::SetStalled(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stalled_.empty()) stalled_ = why.empty() ? std::string("stalled") : why;
}

HttpResponse WorkerHealth::Live() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!stalled_.empty()) return {503, absl::StrCat("stalled: ", stalled_, "\n")};
  return {200, "ok\n"};
}

HttpResponse WorkerHealth::Ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!stalled_.empty()) return {503, absl::StrCat("stalled: ", stalled_, "\n")};
  if (draining_) return {503, "draining\n"};
  if (!loaded_) return {503, "loading model\n"};
  if (!registered_) return {503, "not registered with the server\n"};
  return {200, "ready\n"};
}

absl::StatusOr<int> WorkerHealth::Serve(const std::string& address) {
  auto http = std::make_unique<HttpServer>();
  http->Add("/healthz", [this] { return Live(); });
  http->Add("/readyz", [this] { return Ready(); });
  auto port = http->Start(address, "--http_listen");
  if (!port.ok()) return port.status();
  http_ = std::move(http);
  return port;
}

}  // namespace magi
