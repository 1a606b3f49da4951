// WorkerHealth: what magi-worker's probes report (magi-worker --http_listen):
//   GET /healthz  200 "ok" while the process is usable; 503 "stalled: ..." once the step
//                 watchdog (WorkerLink, --step_timeout_seconds) saw a job make no progress --
//                 a wedged collective never returns, so only a restart recovers (liveness)
//   GET /readyz   200 "ready" once the model is loaded and the group is registered with
//                 the server; 503 naming what is missing ("loading model", "not registered
//                 with the server", "draining", "stalled: ...") otherwise (readiness)
// The pieces are set by worker_main (loaded), WorkerLink (registered, stalled) and the
// SIGTERM handler (draining).
//
// Thread safety: all methods are safe to call concurrently.
#ifndef MAGI_WORKER_MAIN_WORKER_HEALTH_H_
#define MAGI_WORKER_MAIN_WORKER_HEALTH_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "base/http_server.h"

namespace magi {

class WorkerHealth {
 public:
  WorkerHealth();
  ~WorkerHealth();
  WorkerHealth(const WorkerHealth&) = delete;
  WorkerHealth& operator=(const WorkerHealth&) = delete;

  void SetLoaded();
  void SetRegistered(bool registered);
  void SetDraining();
  // Sticky: a stalled worker stays unhealthy until the process restarts.
  void SetStalled(const std::string& why);

  // /healthz: 200 unless stalled.
  HttpResponse Live() const;
  // /readyz: 200 only when loaded, registered, not draining and not stalled.
  HttpResponse Ready() const;
  bool ready() const { return Ready().code == 200; }

  // Serves /healthz and /readyz on `address` until destroyed; returns the bound port, or
  // InvalidArgument naming --http_listen.
  absl::StatusOr<int> Serve(const std::string& address);

 private:
  mutable std::mutex mu_;
  bool loaded_ = false;
  bool registered_ = false;
  bool draining_ = false;
  std::string stalled_;  // "" = not stalled
  std::unique_ptr<HttpServer> http_;
};

}  // namespace magi

#endif  // MAGI_WORKER_MAIN_WORKER_HEALTH_H_
