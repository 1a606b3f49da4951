// Request validation at the edge: every GenerateRequest is checked here, field by field,
// before it is persisted or reaches a worker. A bad request gets INVALID_ARGUMENT whose
// message starts with the field path ("prompts[2].from_chunk: ...") and states the allowed
// range; nothing downstream has to re-check or can crash on it.
//
// Thread safety: stateless functions; reentrant.
#ifndef MAGI_SERVER_REQUEST_VALIDATOR_H_
#define MAGI_SERVER_REQUEST_VALIDATOR_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "jobspec/job_spec.h"
#include "magi/internal/v1/worker_pool.pb.h"
#include "magi/v1/video_generation.pb.h"
#include "server/model_catalog.h"

namespace magi {

// Limits that do not depend on the model. What the job is (sizes, frames, steps, guidance,
// prompts) is judged by BuildJobSpec (jobspec/job_spec.h) under `job`; the rest here.
struct RequestLimits {
  JobLimits job;
  int64_t max_media_bytes = 32 << 20;          // image or prefix video upload
  int max_priority = 9;
  int64_t max_deadline_ahead_ms = int64_t{7} * 24 * 3600 * 1000;
  int max_idempotency_key_bytes = 128;
  int max_model_name_bytes = 128;
  bool decode_media = true;  // decode image / prefix video to reject corrupt bytes early
};

// A request that passed validation: its JobSpec (every default filled in, the geometry).
struct ValidatedRequest {
  JobSpec spec;
  ModelInfo model;
  const ::magi::v1::GenerateRequest& request() const { return spec.request(); }
  int chunks_total() const { return spec.chunks_total(); }
};

// Validates `request` against `catalog` at time `now_unix_ms`. InvalidArgument naming the
// field and allowed range; DeadlineExceeded when deadline_unix_ms already passed.
absl::StatusOr<ValidatedRequest> ValidateGenerateRequest(const ::magi::v1::GenerateRequest& request,
                                                         const ModelCatalog& catalog,
                                                         int64_t now_unix_ms,
                                                         const RequestLimits& limits = {});

}  // namespace magi

#endif  // MAGI_SERVER_REQUEST_VALIDATOR_H_
