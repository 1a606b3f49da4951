// ServerMetrics: the Prometheus metrics of magi-server, in one registry that the HTTP
// /metrics endpoint serialises. Names follow Prometheus practice: base units in the name
// (_seconds, _bytes), _total for counters, bounded label sets (outcome, reason, model).
//
// The `model` label (queue depth, running, submitted, re-queued and finished jobs) takes only
// names a job was accepted for, i.e. names in the server's catalog (worker groups register
// them; a request for any other name is refused before it is counted) or recovered from the
// job store: a set as small as the models served. TouchModel() creates a model's series at 0,
// so dashboards and autoscalers see 0 rather than no data. The histograms carry no model
// label (their buckets multiply every series).
//
// Thread safety: prometheus-cpp metrics are thread-safe; the pointers are stable for the
// object's lifetime. Owns its registry; not copyable.
#ifndef MAGI_SERVER_SERVER_METRICS_H_
#define MAGI_SERVER_SERVER_METRICS_H_

#include <map>
#include <memory>
#include <mutex>
#include <set>
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

  // outcome: succeeded | failed | cancelled | deadline_exceeded; model: the job's model.
  prometheus::Counter& JobsFinished(const std::string& outcome, const std::string& model);
  prometheus::Counter& JobsSubmitted(const std::string& model);
  prometheus::Counter& JobsRequeued(const std::string& model);
  // Creates every per-model series of `model` (at 0) once; later calls do nothing.
  void TouchModel(const std::string& model);
  // Sets magi_queue_depth{model} and magi_jobs_running{model} for every model touched so far:
  // the counts given, 0 for the others (a model whose jobs all finished reads 0, not stale).
  // Touches the models named.
  void SetJobGauges(const std::map<std::string, int>& queued, const std::map<std::string, int>& running);
  // reason: invalid_argument | queue_full | draining | deadline_exceeded.
  prometheus::Counter& JobsRejected(const std::string& reason);
  // WorkerPool calls refused by worker authentication; reason: missing | malformed | invalid.
  prometheus::Counter& WorkerAuthFailures(const std::string& reason);
  // magi.v1 RPCs and HTTP API requests refused by client token authentication
  // (--client_tokens_file); reason: missing | malformed | invalid.
  prometheus::Counter& ClientAuthFailures(const std::string& reason);
  // Job store operations that failed; op: insert | update | put_chunk | final_video | delete | read.
  prometheus::Counter& StoreErrors(const std::string& op);

  prometheus::Gauge* worker_groups_up;
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
  prometheus::Family<prometheus::Gauge>* queue_depth_;
  prometheus::Family<prometheus::Gauge>* jobs_running_;
  prometheus::Family<prometheus::Counter>* jobs_submitted_total_;
  prometheus::Family<prometheus::Counter>* jobs_requeued_total_;
  prometheus::Family<prometheus::Counter>* jobs_total_;
  prometheus::Family<prometheus::Counter>* rejected_total_;
  prometheus::Family<prometheus::Counter>* worker_auth_failures_total_;
  prometheus::Family<prometheus::Counter>* client_auth_failures_total_;
  prometheus::Family<prometheus::Counter>* store_errors_total_;
  std::mutex models_mu_;
  std::set<std::string> models_;  // touched
};

// The version magi_build_info reports (and `magi-server --version` would print): the
// project's version and the git revision it was built from ("unknown" outside a checkout).
const char* BuildVersion();
const char* BuildRevision();

}  // namespace magi

#endif  // MAGI_SERVER_SERVER_METRICS_H_
