// WorkerHealth: what magi-worker's probes report (magi-worker --http_listen):
//   GET /healthz  200 "ok" while the process is usable; 503 "stalled: ..." once the step
//                 watchdog (WorkerLink, --step_timeout_seconds) saw a job make no progress --
//                 a wedged collective never returns, so only a restart recovers (liveness)
//   GET /readyz   200 "ready" once the model is loaded and the group is registered with
//                 the server; 503 naming what is missing ("loading model", "not registered
//                 with the server", "draining", "stalled: ...") otherwise (readiness)
//   GET /metrics  Prometheus text: magi_worker_startup_seconds (probe server start to model
//                 loaded: the rendezvous plus the weights, a gauge set once),
//                 magi_worker_ready / magi_worker_stalled (0 or 1, what the probes answer),
//                 magi_worker_step_seconds (histogram of this rank's denoising steps; the
//                 leader's, whose steps the group's ranks take in lockstep)
// The pieces are set by worker_main (loaded), WorkerLink (registered, stalled) and the
// SIGTERM handler (draining).
//
// Thread safety: all methods are safe to call concurrently.
#ifndef MAGI_WORKER_MAIN_WORKER_HEALTH_H_
#define MAGI_WORKER_MAIN_WORKER_HEALTH_H_

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "base/http_server.h"

namespace prometheus {
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace magi {

class WorkerHealth {
 public:
  WorkerHealth();
  ~WorkerHealth();
  WorkerHealth(const WorkerHealth&) = delete;
  WorkerHealth& operator=(const WorkerHealth&) = delete;

  // Also sets magi_worker_startup_seconds to the time since construction.
  void SetLoaded();
  // One denoising step of `seconds` (magi_worker_step_seconds).
  void ObserveStep(double seconds);
  void SetRegistered(bool registered);
  void SetDraining();
  // Sticky: a stalled worker stays unhealthy until the process restarts.
  void SetStalled(const std::string& why);

  // /healthz: 200 unless stalled.
  HttpResponse Live() const;
  // /readyz: 200 only when loaded, registered, not draining and not stalled.
  HttpResponse Ready() const;
  bool ready() const { return Ready().code == 200; }
  // /metrics: the Prometheus text exposition of the metrics above.
  HttpResponse Metrics() const;

  // Serves /healthz, /readyz and /metrics on `address` until destroyed; returns the bound port, or
  // InvalidArgument naming --http_listen.
  absl::StatusOr<int> Serve(const std::string& address);

 private:
  mutable std::mutex mu_;
  bool loaded_ = false;
  bool registered_ = false;
  bool draining_ = false;
  std::string stalled_;  // "" = not stalled
  const std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge* startup_seconds_;
  prometheus::Gauge* ready_;
  prometheus::Gauge* stalled_gauge_;
  prometheus::Histogram* step_seconds_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace magi

#endif  // MAGI_WORKER_MAIN_WORKER_HEALTH_H_
