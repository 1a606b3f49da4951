// The device a tool or the worker runs the model on, from a --device flag. One owner of the
// rule and its messages: magi-worker, magi-golden and bench_dit_forward parse with it.
//
// Thread safety: reentrant.
#ifndef MAGI_WORKER_MODEL_DEVICE_H_
#define MAGI_WORKER_MODEL_DEVICE_H_

#include <string>

#include <c10/core/Device.h>

#include "absl/status/statusor.h"

namespace magi {

// "cpu", "cuda" (= cuda:0) or, with allow_index, "cuda:N". A CUDA device must be usable here:
// InvalidArgument (message starting with `flag`) for another value, a LibTorch built without
// CUDA (Debian's), no visible GPU, or an index out of range.
absl::StatusOr<c10::Device> ParseDevice(const std::string& flag, const std::string& value, bool allow_index = true);

}  // namespace magi

#endif  // MAGI_WORKER_MODEL_DEVICE_H_
