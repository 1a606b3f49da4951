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
#include "magi/internal/v1/worker_pool.pb.h"
#include "magi/v1/video_generation.pb.h"
#include "server/model_catalog.h"

namespace magi {

// Limits that do not depend on the model.
struct RequestLimits {
  int64_t max_prompt_bytes = 16 * 1024;        // one prompt's text
  int64_t max_total_prompt_bytes = 256 * 1024; // all prompts together
  int64_t max_media_bytes = 32 << 20;          // image or prefix video upload
  int max_fps = 120;
  int max_priority = 9;
  float max_guidance_scale = 20.0f;
  int64_t max_deadline_ahead_ms = int64_t{7} * 24 * 3600 * 1000;
  int max_idempotency_key_bytes = 128;
  int max_model_name_bytes = 128;
  bool decode_media = true;  // decode image / prefix video to reject corrupt bytes early
};

// A request that passed validation, with every default filled in.
struct ValidatedRequest {
  ::magi::v1::GenerateRequest request;  // model, sizes, fps, steps, seed, mode all set
  ModelInfo model;
  int chunks_total = 0;
};

// Validates `request` against `catalog` at time `now_unix_ms`. InvalidArgument naming the
// field and allowed range; DeadlineExceeded when deadline_unix_ms already passed.
absl::StatusOr<ValidatedRequest> ValidateGenerateRequest(const ::magi::v1::GenerateRequest& request,
                                                         const ModelCatalog& catalog,
                                                         int64_t now_unix_ms,
                                                         const RequestLimits& limits = {});

// Number of chunks a video of `num_frames` frames has with `frames_per_chunk` per chunk.
int ChunkCount(int num_frames, int frames_per_chunk);

}  // namespace magi

#endif  // MAGI_SERVER_REQUEST_VALIDATOR_H_
