// How one rank's share of the model is laid out: its position in the tensor-parallel and
// context-parallel groups. Model code takes every shard shape from here (never from
// globals), so a single-rank run is simply the layout {tp 1 of 1, cp 1 of 1}.
#ifndef MAGI_PARALLEL_LAYOUT_H_
#define MAGI_PARALLEL_LAYOUT_H_

#include "absl/status/status.h"

namespace magi {

struct ShardLayout {
  int tp_rank = 0;
  int tp_size = 1;
  int cp_rank = 0;
  int cp_size = 1;

  bool single() const { return tp_size == 1 && cp_size == 1; }
  // Splits `total` items (heads, groups, columns) evenly; `what` names them in errors.
  absl::Status CheckDivisible(int total, const char* what) const;
  int Local(int total) const { return total / tp_size; }
  int LocalBegin(int total) const { return tp_rank * (total / tp_size); }
};

}  // namespace magi

#endif  // MAGI_PARALLEL_LAYOUT_H_
