// ServerMetrics: the Prometheus metrics of magi-server, in one registry that the HTTP
// /metrics endpoint serialises. Names follow Prometheus practice: base units in the name
// (_seconds, _bytes), _total for counters, bounded label sets (outcome, reason).
//
// Thread safety: prometheus-cpp metrics are thread-safe; the pointers are stable for the
// object's lifetime. Owns its registry; not copyable.
#ifndef MAGI_SERVER_SERVER_METRICS_H_
#define MAGI_SERVER_SERVER_METRICS_H_

#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace magi {

class ServerMetrics {
 public:
  ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Text exposition format of every metric (what /metrics returns).
  std::string Serialize() const;
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // outcome: succeeded | failed | cancelled | deadline_exceeded.
  prometheus::Counter& JobsFinished(const std::string& outcome);
  // reason: invalid_argument | queue_full | draining | deadline_exceeded.
  prometheus::Counter& JobsRejected(const std::string& reason);
  // WorkerPool calls refused by worker authentication; reason: missing | malformed | invalid.
  prometheus::Counter& WorkerAuthFailures(const std::string& reason);
  // magi.v1 RPCs and HTTP API requests refused by client token authentication
  // (--client_tokens_file); reason: missing | malformed | invalid.
  prometheus::Counter& ClientAuthFailures(const std::string& reason);
  // Job store operations that failed; op: insert | update | put_chunk | final_video | delete | read.
  prometheus::Counter& StoreErrors(const std::string& op);

  prometheus::Gauge* queue_depth;
  prometheus::Gauge* jobs_running;
  prometheus::Gauge* worker_groups_up;
  prometheus::Counter* jobs_submitted;
  prometheus::Counter* jobs_requeued;
  prometheus::Counter* chunks_emitted;
  prometheus::Counter* chunk_bytes;
  prometheus::Histogram* queue_wait_seconds;
  prometheus::Histogram* time_to_first_chunk_seconds;
  prometheus::Histogram* job_latency_seconds;
  prometheus::Histogram* step_seconds;
  prometheus::Histogram* chunk_delivery_lag_seconds;
  prometheus::Gauge* feed_bytes_held;  // event bytes handed to client streams, not yet written
  prometheus::Gauge* feed_watchers;    // client streams attached to jobs (Generate, Watch)

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* jobs_total_;
  prometheus::Family<prometheus::Counter>* rejected_total_;
  prometheus::Family<prometheus::Counter>* worker_auth_failures_total_;
  prometheus::Family<prometheus::Counter>* client_auth_failures_total_;
  prometheus::Family<prometheus::Counter>* store_errors_total_;
};

}  // namespace magi

#endif  // MAGI_SERVER_SERVER_METRICS_H_
