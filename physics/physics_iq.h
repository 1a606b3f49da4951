// Physics-IQ's continuation metrics and score (Motamed et al. 2025, "Do generative video
// models understand physical principles?", github.com/google-deepmind/physics-IQ-benchmark),
// re-implemented from their public definitions for our synthetic world (world.h).
//
// What we follow, by their file:
//  - physiq/binary_mask_generator.py, `generate_mask`: a motion mask per frame from the video
//    alone. Gray = OpenCV's BGR2GRAY (fixed-point BT.601: (4899 R + 9617 G + 1868 B + 8192)
//    >> 14); a running-average background seeded with the first frame and updated as
//    cv2.accumulateWeighted(gray, avg, 0.3) BEFORE the difference; |gray - round(avg)| >
//    threshold (10) is motion; then a morphological opening and a closing with a square
//    kernel (out-of-image pixels ignored, as OpenCV's default border for erode/dilate). The
//    first frame's mask is empty.
//  - physiq/calculate_and_write_metrics_to_csv.py: MSE = mean over frames of the per-frame
//    mean of squared differences of pixel values scaled to [0, 1]; spatial IoU = IoU of the
//    masks OR-ed over time; spatiotemporal IoU = mean over frames of the per-frame IoU;
//    weighted spatial IoU = sum(min) / sum(max) of the per-pixel fraction of frames in
//    motion. An empty union counts as IoU 1 (both agree that nothing moves).
//  - physiq/calculate_iq_score_stable.py, the 'orig' final score: over all scenes, the mean
//    of each IoU metric divided by the mean of its physical-variance value, averaged over the
//    three IoUs, minus (mean MSE - mean physical-variance MSE); clipped to [0, 1]. We report
//    it x 100, as the paper does.
//
// Where ours differs, and why:
//  - Physical variance. Theirs is take-1 vs take-2 of the same real scene. Our world is
//    deterministic, so the physical-variance reference is the ground truth against itself:
//    IoUs 1, MSE 0 (PhysicalVarianceOfTruth); ground truth therefore scores exactly 100.
//  - No Gaussian blur (theirs: 5x5 before the difference). It suppresses camera noise; our
//    renders are noise-free flat colours, and on 64x64 frames a 5x5 blur widens every edge by
//    ~2 px. A model's decoded MP4 has codec noise: the threshold and the opening absorb it.
//  - Kernel 3 by default (theirs 5) and no 4x downscale before comparing. They compute masks
//    at full resolution, shrink them by 4 and re-threshold (> 127); our frames are already
//    tiny (64 px), so we compare at the rendered size and shrink the kernel instead.
//  - Masks stay in memory (theirs are written as an 'mp4v' video and read back, which adds
//    codec loss to the masks themselves).
//  - One view per scene (theirs: three cameras averaged) and the whole continuation is
//    compared (theirs: the first 5 s at their fps).
//
// Thread safety: pure functions of their arguments; reentrant.
#ifndef MAGI_PHYSICS_PHYSICS_IQ_H_
#define MAGI_PHYSICS_PHYSICS_IQ_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/media/rgb_frame.h"

namespace magi {
namespace physics {

// One binary mask: bits[y * width + x] is 0 or 1.
struct BinaryMask {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> bits;

  BinaryMask() = default;
  BinaryMask(int w, int h) : width(w), height(h), bits(static_cast<size_t>(w) * h, 0) {}
};

struct MotionMaskOptions {
  int threshold = 10;    // |gray - background| above this is motion (theirs: 10)
  double alpha = 0.3;    // running-average weight of the new frame (theirs: 0.3)
  int morph_kernel = 3;  // odd square kernel for opening + closing; 1 = none (theirs: 5)
};

// OpenCV's BGR2GRAY value of one RGB pixel.
uint8_t Gray(uint8_t r, uint8_t g, uint8_t b);

// The motion masks of a video, one per frame (the first is empty). InvalidArgument when
// `frames` is empty, a frame's size differs from the first's or its byte count is wrong, or
// an option is out of range (each error names the frame index or the option).
absl::StatusOr<std::vector<BinaryMask>> MotionMasks(const std::vector<RgbFrame>& frames,
                                                    const MotionMaskOptions& options = {});

// IoU of two masks of the same size; 1 when both are empty.
absl::StatusOr<double> MaskIou(const BinaryMask& a, const BinaryMask& b);

// The metrics between a true and a candidate video (same length, same sizes); errors name
// the frame index and both sizes.
absl::StatusOr<double> MeanSquaredError(const std::vector<RgbFrame>& truth,
                                        const std::vector<RgbFrame>& candidate);
absl::StatusOr<double> SpatialIou(const std::vector<BinaryMask>& truth,
                                  const std::vector<BinaryMask>& candidate);
absl::StatusOr<double> SpatiotemporalIou(const std::vector<BinaryMask>& truth,
                                         const std::vector<BinaryMask>& candidate);
absl::StatusOr<double> WeightedSpatialIou(const std::vector<BinaryMask>& truth,
                                          const std::vector<BinaryMask>& candidate);

// One scene's four metrics (or its physical-variance reference).
struct SceneMetrics {
  double spatial_iou = 0.0;
  double spatiotemporal_iou = 0.0;
  double weighted_spatial_iou = 0.0;
  double mse = 0.0;
  // The spatiotemporal IoU taken apart by frame (ScoreContinuation fills them; a summary sums
  // them over scenes): the truth's still frames (empty mask; the first frame is one), those on
  // which the candidate is still too (IoU 1 each; where it is not, IoU 0), and the summed IoU of
  // the frames where the truth moves. spatiotemporal IoU = (still_agreed + moving_iou_sum) /
  // frames.
  int frames = 0;
  int still_frames = 0;
  int still_agreed = 0;
  double moving_iou_sum = 0.0;

  // The breakdown's three figures (0 where there is nothing to divide): the share of still
  // frames, the share of them the candidate keeps still, the mean IoU over the moving ones.
  double StillShare() const;
  double StillAgreement() const;
  double MovingIou() const;
};

// All four metrics of `candidate` against `truth` (masks from MotionMasks with `options`).
absl::StatusOr<SceneMetrics> ScoreContinuation(const std::vector<RgbFrame>& truth,
                                               const std::vector<RgbFrame>& candidate,
                                               const MotionMaskOptions& options = {});

// The physical-variance reference of a deterministic world: IoUs 1, MSE 0.
SceneMetrics PhysicalVarianceOfTruth();

// A method's row: the means over scenes (the frame breakdown summed) and the Physics-IQ
// score in [0, 100].
struct MethodSummary {
  SceneMetrics mean;
  double physics_iq = 0.0;
};

// Physics-IQ's 'orig' score over scenes (see the file comment). `variance` holds one
// reference per scene. InvalidArgument when the lists are empty or of different lengths.
absl::StatusOr<MethodSummary> Summarize(const std::vector<SceneMetrics>& scenes,
                                        const std::vector<SceneMetrics>& variance);

}  // namespace physics
}  // namespace magi

#endif  // MAGI_PHYSICS_PHYSICS_IQ_H_
