#include "parallel/layout.h"

#include "absl/strings/str_cat.h"

namespace magi {

absl::Status ShardLayout::CheckDivisible(int total, const char* what) const {
  if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size) {
    return absl::InvalidArgumentError(absl::StrCat("tensor-parallel rank ", tp_rank, " of ", tp_size, " is invalid"));
  }
  if (total % tp_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " (", total, ") must be divisible by the tensor-parallel size (",
                                                   tp_size, ")"));
  }
  return absl::OkStatus();
}

}  // namespace magi
