#include "physics/continuation_eval.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace magi {
namespace physics {

absl::Status CheckEvalOptions(const EvalOptions& o) {
  if (o.scenes < 1 || o.scenes > kMaxEvalScenes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--scenes is ", o.scenes, "; allowed: [1, ", kMaxEvalScenes, "]"));
  }
  if (o.frames < 3 || o.frames > kMaxFrames) {
    return absl::InvalidArgumentError(
        absl::StrCat("--frames is ", o.frames, "; allowed: [3, ", kMaxFrames, "]"));
  }
  absl::Status size_ok = CheckRenderArgs(o.size, o.frames);
  if (!size_ok.ok()) return size_ok;
  if (o.context_frames < 1 || o.context_frames > o.frames - 2) {
    return absl::InvalidArgumentError(absl::StrCat("--context_frames is ", o.context_frames,
                                                   "; allowed: [1, ", o.frames - 2,
                                                   "] (--frames minus 2)"));
  }
  return absl::OkStatus();
}

uint64_t EvalSceneSeed(uint64_t seed, int index) {
  SplitMix64 rng(seed ^ 0x6576616c2d736365ULL);  // "eval-sce"
  uint64_t v = rng.Next();
  SplitMix64 mix(v + static_cast<uint64_t>(index) * 0x9e3779b97f4a7c15ULL);
  return mix.Next();
}

absl::StatusOr<std::vector<MethodRow>> RunEval(
    const EvalOptions& options,
    const std::vector<std::pair<std::string, ContinuationSource>>& extra) {
  absl::Status ok = CheckEvalOptions(options);
  if (!ok.ok()) return ok;
  const size_t methods = 2 + extra.size();
  std::vector<std::vector<SceneMetrics>> per_method(methods);
  std::vector<SceneMetrics> variance;
  const int k = options.context_frames;
  for (int i = 0; i < options.scenes; ++i) {
    const Scene scene = MakeScene(EvalSceneSeed(options.seed, i));
    absl::StatusOr<std::vector<RgbFrame>> video =
        RenderSceneRgb(scene, options.size, options.frames);
    if (!video.ok()) return video.status();
    std::vector<RgbFrame> context(video->begin(), video->begin() + k);
    std::vector<RgbFrame> truth(video->begin() + k, video->end());
    std::vector<std::vector<RgbFrame>> candidates;
    candidates.push_back(truth);
    candidates.push_back(std::vector<RgbFrame>(truth.size(), context.back()));
    for (const auto& [name, source] : extra) {
      absl::StatusOr<std::vector<RgbFrame>> c = source(i, scene, context);
      if (!c.ok()) {
        return absl::Status(c.status().code(),
                            absl::StrCat(name, ", scene ", i, ": ", c.status().message()));
      }
      if (c->size() != truth.size()) {
        return absl::InvalidArgumentError(absl::StrCat(name, ", scene ", i, ": ", c->size(),
                                                       " continuation frames; need ", truth.size(),
                                                       " (--frames minus --context_frames)"));
      }
      candidates.push_back(std::move(*c));
    }
    for (size_t m = 0; m < methods; ++m) {
      absl::StatusOr<SceneMetrics> s = ScoreContinuation(truth, candidates[m], options.masks);
      if (!s.ok()) {
        const std::string name = m < 2 ? "baseline" : extra[m - 2].first;
        return absl::Status(s.status().code(),
                            absl::StrCat(name, ", scene ", i, ": ", s.status().message()));
      }
      per_method[m].push_back(*s);
    }
    variance.push_back(PhysicalVarianceOfTruth());
  }
  std::vector<MethodRow> rows;
  for (size_t m = 0; m < methods; ++m) {
    MethodRow row;
    row.method = m == 0 ? "ground truth" : m == 1 ? "repeat last frame" : extra[m - 2].first;
    absl::StatusOr<MethodSummary> s = Summarize(per_method[m], variance);
    if (!s.ok()) return s.status();
    row.summary = *s;
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string FormatTable(const std::vector<MethodRow>& rows) {
  std::string out =
      absl::StrFormat("%-20s %10s %12s %19s %21s %9s\n", "method", "Physics IQ", "spatial IoU",
                      "spatiotemporal IoU", "weighted spatial IoU", "MSE");
  for (const MethodRow& r : rows) {
    absl::StrAppendFormat(&out, "%-20s %10.1f %12.3f %19.3f %21.3f %9.4f\n", r.method,
                          r.summary.physics_iq, r.summary.mean.spatial_iou,
                          r.summary.mean.spatiotemporal_iou, r.summary.mean.weighted_spatial_iou,
                          r.summary.mean.mse);
  }
  // The spatiotemporal IoU by frame: a frame the truth keeps still scores 1 only if the
  // candidate's mask is empty too, a moving one its mask IoU.
  absl::StrAppendFormat(&out, "\n%-20s %13s %19s %16s\n", "spatiotemporal IoU", "still frames",
                        "kept still of them", "IoU when moving");
  for (const MethodRow& r : rows) {
    const SceneMetrics& m = r.summary.mean;
    absl::StrAppendFormat(&out, "%-20s %6d (%3.0f%%) %12d (%3.0f%%) %16.3f\n", r.method, m.still_frames,
                          100.0 * m.StillShare(), m.still_agreed, 100.0 * m.StillAgreement(), m.MovingIou());
  }
  return out;
}

}  // namespace physics
}  // namespace magi
