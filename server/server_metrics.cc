#include "server/server_metrics.h"

#include <prometheus/text_serializer.h>

namespace magi {
namespace {

prometheus::Histogram::BucketBoundaries SecondsBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
}

}  // namespace

const char* BuildVersion() { return MAGI_SERVE_VERSION; }
const char* BuildRevision() { return MAGI_SERVE_REVISION; }

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  using namespace prometheus;
  BuildGauge().Name("magi_build_info")
      .Help("Always 1; labels: version and git revision of this magi-server build.")
      .Register(*registry_).Add({{"version", BuildVersion()}, {"revision", BuildRevision()}}).Set(1);
  queue_depth_ = &BuildGauge().Name("magi_queue_depth").Help("Jobs waiting for a worker group, by model.")
                      .Register(*registry_);
  jobs_running_ = &BuildGauge().Name("magi_jobs_running").Help("Jobs assigned to a worker group, by model.")
                       .Register(*registry_);
  worker_groups_up = &BuildGauge().Name("magi_worker_groups_up")
                          .Help("Worker groups connected and registered.").Register(*registry_).Add({});
  jobs_submitted_total_ = &BuildCounter().Name("magi_jobs_submitted_total")
                               .Help("Jobs accepted (persisted), by model.").Register(*registry_);
  jobs_requeued_total_ = &BuildCounter().Name("magi_jobs_requeued_total")
                              .Help("Jobs put back in the queue because their worker group was lost or left, by model.")
                              .Register(*registry_);
  chunks_emitted = &BuildCounter().Name("magi_chunks_emitted_total")
                        .Help("Video chunks finished and stored.").Register(*registry_).Add({});
  chunk_bytes = &BuildCounter().Name("magi_chunk_bytes_total")
                     .Help("Bytes of fMP4 fragments stored.").Register(*registry_).Add({});
  jobs_total_ = &BuildCounter().Name("magi_jobs_total")
                     .Help("Finished jobs by outcome and model.").Register(*registry_);
  rejected_total_ = &BuildCounter().Name("magi_jobs_rejected_total")
                         .Help("Requests refused at admission by reason.").Register(*registry_);
  worker_auth_failures_total_ = &BuildCounter().Name("magi_worker_auth_failures_total")
                                     .Help("WorkerPool calls refused UNAUTHENTICATED (no, malformed or wrong worker token) by reason.")
                                     .Register(*registry_);
  client_auth_failures_total_ = &BuildCounter().Name("magi_client_auth_failures_total")
                                     .Help("magi.v1 RPCs and HTTP API requests refused UNAUTHENTICATED (no, malformed or wrong client token) by reason.")
                                     .Register(*registry_);
  store_errors_total_ = &BuildCounter().Name("magi_store_errors_total")
                            .Help("Job store operations that failed, by operation (a failed state transition also fails its job).")
                            .Register(*registry_);
  feed_bytes_held = &BuildGauge().Name("magi_feed_bytes_held")
                         .Help("Bytes of events handed to client streams and not yet written (bounded per stream by the feed window).")
                         .Register(*registry_).Add({});
  feed_watchers = &BuildGauge().Name("magi_feed_watchers")
                       .Help("Client event streams (Generate, Watch) attached to jobs.")
                       .Register(*registry_).Add({});
  queue_wait_seconds = &BuildHistogram().Name("magi_queue_wait_seconds")
                            .Help("Time from acceptance (or re-queue) to assignment.")
                            .Register(*registry_).Add({}, SecondsBuckets());
  time_to_first_chunk_seconds = &BuildHistogram().Name("magi_time_to_first_chunk_seconds")
                                     .Help("Time from acceptance to the first stored chunk.")
                                     .Register(*registry_).Add({}, SecondsBuckets());
  job_latency_seconds = &BuildHistogram().Name("magi_job_latency_seconds")
                             .Help("Time from acceptance to success.")
                             .Register(*registry_).Add({}, SecondsBuckets());
  step_seconds = &BuildHistogram().Name("magi_step_seconds")
                      .Help("Duration of one denoising step reported by workers.")
                      .Register(*registry_).Add({}, SecondsBuckets());
  chunk_delivery_lag_seconds = &BuildHistogram().Name("magi_chunk_delivery_lag_seconds")
                                    .Help("Time from a worker finishing a chunk to the server storing it.")
                                    .Register(*registry_).Add({}, SecondsBuckets());
  for (const char* r : {"invalid_argument", "queue_full", "draining", "deadline_exceeded"}) JobsRejected(r);
  for (const char* r : {"missing", "malformed", "invalid"}) {
    WorkerAuthFailures(r);
    ClientAuthFailures(r);  // at 0 without client tokens too, so rate() and the alert see a series
  }
  for (const char* r : {"tenant_quota", "tenant_rate", "idempotency_conflict"}) JobsRejected(r);
  for (const char* op : {"insert", "update", "put_chunk", "final_video", "delete", "read"}) StoreErrors(op);
}

prometheus::Counter& ServerMetrics::JobsFinished(const std::string& outcome, const std::string& model) {
  TouchModel(model);
  return jobs_total_->Add({{"outcome", outcome}, {"model", model}});
}

prometheus::Counter& ServerMetrics::JobsSubmitted(const std::string& model) {
  TouchModel(model);
  return jobs_submitted_total_->Add({{"model", model}});
}

prometheus::Counter& ServerMetrics::JobsRequeued(const std::string& model) {
  TouchModel(model);
  return jobs_requeued_total_->Add({{"model", model}});
}

void ServerMetrics::TouchModel(const std::string& model) {
  {
    std::lock_guard<std::mutex> lock(models_mu_);
    if (!models_.insert(model).second) return;
  }
  // Family::Add returns the existing series for known labels: safe if two threads race here.
  queue_depth_->Add({{"model", model}});
  jobs_running_->Add({{"model", model}});
  jobs_submitted_total_->Add({{"model", model}});
  jobs_requeued_total_->Add({{"model", model}});
  for (const char* o : {"succeeded", "failed", "cancelled", "deadline_exceeded"}) {
    jobs_total_->Add({{"outcome", o}, {"model", model}});
  }
}

void ServerMetrics::SetJobGauges(const std::map<std::string, int>& queued, const std::map<std::string, int>& running) {
  for (const auto& [m, n] : queued) TouchModel(m);
  for (const auto& [m, n] : running) TouchModel(m);
  std::set<std::string> models;
  {
    std::lock_guard<std::mutex> lock(models_mu_);
    models = models_;
  }
  for (const std::string& m : models) {
    auto q = queued.find(m);
    auto r = running.find(m);
    queue_depth_->Add({{"model", m}}).Set(q == queued.end() ? 0 : q->second);
    jobs_running_->Add({{"model", m}}).Set(r == running.end() ? 0 : r->second);
  }
}

prometheus::Counter& ServerMetrics::JobsRejected(const std::string& reason) {
  return rejected_total_->Add({{"reason", reason}});
}

prometheus::Counter& ServerMetrics::WorkerAuthFailures(const std::string& reason) {
  return worker_auth_failures_total_->Add({{"reason", reason}});
}

prometheus::Counter& ServerMetrics::ClientAuthFailures(const std::string& reason) {
  return client_auth_failures_total_->Add({{"reason", reason}});
}

prometheus::Counter& ServerMetrics::StoreErrors(const std::string& op) {
  return store_errors_total_->Add({{"op", op}});
}

std::string ServerMetrics::Serialize() const {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

}  // namespace magi
