// The continuation benchmark over held-out scenes of the synthetic world: each scene's first
// `context_frames` frames are the context, the remaining frames the true continuation; a
// method's continuation is scored against it with Physics-IQ's metrics (physics_iq.h) and
// the rows are printed like the MAGI-1 paper's Physics-IQ table.
//
// Two baselines are always present: "ground truth" (the true continuation; 100 by
// construction) and "repeat last frame" (the last context frame held). A model's videos come
// in through a ContinuationSource.
//
// Held-out scenes: scene i of an evaluation with seed S uses EvalSceneSeed(S, i), a value a
// training run drawing scenes as MakeScene(seed) with small sequential seeds does not hit by
// accident (it is a splitmix64 hash of S and i under an evaluation-only tag).
//
// Thread safety: pure functions; a ContinuationSource is called on the caller's thread.
#ifndef MAGI_PHYSICS_CONTINUATION_EVAL_H_
#define MAGI_PHYSICS_CONTINUATION_EVAL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "physics/physics_iq.h"
#include "physics/world.h"
#include "worker/media/rgb_frame.h"

namespace magi {
namespace physics {

inline constexpr int kMaxEvalScenes = 10000;

struct EvalOptions {
  int scenes = 20;              // --scenes, [1, kMaxEvalScenes]
  uint64_t seed = 1;            // --seed
  int context_frames = 24;      // --context_frames, [1, frames - 2]
  int frames = kDefaultFrames;  // --frames, total per scene, [3, kMaxFrames]
  int size = kDefaultSize;      // --size, a multiple of 16 in [16, 256]
  MotionMaskOptions masks;
};

// Ok, or InvalidArgument naming the flag (--scenes, --context_frames, --frames, --size) and
// its allowed range.
absl::Status CheckEvalOptions(const EvalOptions& options);

uint64_t EvalSceneSeed(uint64_t seed, int index);

// A method's continuation of scene `index` (given the scene and its context frames): exactly
// frames - context_frames frames of size x size. An error fails the evaluation.
using ContinuationSource = std::function<absl::StatusOr<std::vector<RgbFrame>>(
    int index, const Scene& scene, const std::vector<RgbFrame>& context)>;

struct MethodRow {
  std::string method;
  MethodSummary summary;
};

// Scores the baselines and then each of `extra` (name, source) in order.
absl::StatusOr<std::vector<MethodRow>> RunEval(
    const EvalOptions& options,
    const std::vector<std::pair<std::string, ContinuationSource>>& extra = {});

// The rows as a fixed-width text table: method, Physics IQ, spatial IoU, spatiotemporal IoU,
// weighted spatial IoU, MSE.
std::string FormatTable(const std::vector<MethodRow>& rows);

}  // namespace physics
}  // namespace magi

#endif  // MAGI_PHYSICS_CONTINUATION_EVAL_H_
