// Timestep schedules of the autoregressive sampler (spec pipeline.md §2.2-2.3): the sd3
// schedule (shift 3 of t²) over a uniform grid or the 12-step shortcut grid, and the
// distillation step-size intervals. Values are computed with the reference's float32 op
// order (ATen on CPU) so that borderline comparisons (t > 0.3 at T[3n/4] = 0.30000001)
// come out as in the reference. Pure functions; thread-safe.
#ifndef MAGI_WORKER_ENGINE_TIMESTEP_SCHEDULE_H_
#define MAGI_WORKER_ENGINE_TIMESTEP_SCHEDULE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace magi {

// num_steps + 1 float32 times from 0 (noise) to 1 (clean). `shortcut_mode` matters only
// for num_steps == 12 ("16,16,8" selects that grid; anything else the default "8,16,16").
// num_steps must be in [1, 100000].
absl::StatusOr<std::vector<float>> TimestepSchedule(int num_steps, const std::string& shortcut_mode);

// Distillation interval per within-stage step index (init_intervel): all 1, except when
// num_steps % 3 == 0: the pattern [2,1,1] ("16,16,8": [1,1,2]) repeated num_steps / 3 times.
std::vector<int> DistillIntervals(int num_steps, const std::string& shortcut_mode);

}  // namespace magi

#endif  // MAGI_WORKER_ENGINE_TIMESTEP_SCHEDULE_H_
