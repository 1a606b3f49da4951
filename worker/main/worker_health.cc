#include "worker/main/worker_health.h"

#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "absl/strings/str_cat.h"

namespace magi {

WorkerHealth::WorkerHealth() : registry_(std::make_shared<prometheus::Registry>()) {
  using namespace prometheus;
  startup_seconds_ = &BuildGauge().Name("magi_worker_startup_seconds")
                          .Help("Seconds from the start of the probe server to the model loaded (rendezvous and weights); 0 until then.")
                          .Register(*registry_).Add({});
  ready_ = &BuildGauge().Name("magi_worker_ready").Help("1 while /readyz answers 200, else 0.").Register(*registry_).Add({});
  stalled_gauge_ = &BuildGauge().Name("magi_worker_stalled")
                        .Help("1 once the step watchdog saw a job make no progress (sticky), else 0.")
                        .Register(*registry_).Add({});
  // The server's buckets (magi_step_seconds), so the two compare.
  step_seconds_ = &BuildHistogram().Name("magi_worker_step_seconds")
                       .Help("Duration of one denoising step of this worker's jobs.")
                       .Register(*registry_)
                       .Add({}, Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                                                            60, 120, 300, 600, 1800, 3600});
}

WorkerHealth::~WorkerHealth() {
  if (http_) http_->Stop();
}

void WorkerHealth::SetLoaded() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!loaded_) {
    startup_seconds_->Set(std::chrono::duration<double>(std::chrono::steady_clock::now() - created_).count());
  }
  loaded_ = true;
}

void WorkerHealth::ObserveStep(double seconds) {
  if (seconds > 0) step_seconds_->Observe(seconds);
}

HttpResponse WorkerHealth::Metrics() const {
  ready_->Set(ready() ? 1 : 0);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stalled_gauge_->Set(stalled_.empty() ? 0 : 1);
  }
  prometheus::TextSerializer serializer;
  return {200, serializer.Serialize(registry_->Collect()), "text/plain; version=0.0.4; charset=utf-8"};
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
  http->Add("/metrics", [this] { return Metrics(); });
  auto port = http->Start(address, "--http_listen");
  if (!port.ok()) return port.status();
  http_ = std::move(http);
  return port;
}

}  // namespace magi
