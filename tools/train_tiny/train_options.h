// The option checks both trainers of `magi-train-tiny` share (tools/train_tiny).
#ifndef MAGI_TOOLS_TRAIN_TINY_TRAIN_OPTIONS_H_
#define MAGI_TOOLS_TRAIN_TINY_TRAIN_OPTIONS_H_

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace magi {

// InvalidArgument "<what>: <name> must be in [lo, hi], got v" unless lo <= v <= hi (NaN fails).
inline absl::Status CheckTrainOption(const char* what, const char* name, double v, double lo, double hi) {
  if (v >= lo && v <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", name, " must be in [", lo, ", ", hi, "], got ", v));
}

}  // namespace magi

#endif  // MAGI_TOOLS_TRAIN_TINY_TRAIN_OPTIONS_H_
