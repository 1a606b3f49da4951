// The models a server knows before any worker group registers, declared once for the server's
// catalog (server/model_catalog.h) and for the workers that serve them:
//   "tiny": the embedded default, MAGI-1 on the random-weight tiny set (worker/runner/
//     tiny_model.h) that `magi-server --local_workers N` serves. Its runner derives its
//     declaration from the set's config.json; tests/runner checks that it equals this one.
//   "synthetic": the test-pattern runner (worker/runner/synthetic_frame_runner.h), a TEST /
//     DEVELOPMENT model, not MAGI-1: it returns exactly this declaration. Chunks of 24 frames
//     like tiny, but no frame, step or size multiples beyond the API's (sizes of 16) and larger
//     limits, so tests can ask for any shape cheaply.
//
// Thread safety: pure functions. No LibTorch: the server links it.
#ifndef MAGI_JOBSPEC_BUILTIN_MODELS_H_
#define MAGI_JOBSPEC_BUILTIN_MODELS_H_

#include "magi/internal/v1/worker_pool.pb.h"

namespace magi {

inline constexpr char kTinyModelName[] = "tiny";
inline constexpr char kSyntheticModelName[] = "synthetic";

// Limits, defaults and multiples of the embedded "tiny" model.
::magi::internal::v1::ModelInfo TinyModelInfo();

// What SyntheticFrameRunner serves, named "synthetic".
::magi::internal::v1::ModelInfo SyntheticModelInfo();

}  // namespace magi

#endif  // MAGI_JOBSPEC_BUILTIN_MODELS_H_
