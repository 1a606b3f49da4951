// Binary PPM (P6, maxval 255) files for RgbFrame: the dependency-free way `magi-physics`
// writes and reads frame folders (frame_0000.ppm, frame_0001.ppm, ...).
//
// Reading is for our own files and simple foreign ones: comments and any whitespace between
// header fields are accepted; maxval must be 255; size at most kMaxPpmSide per side.
// Errors name the path. Thread safety: reentrant.
#ifndef MAGI_PHYSICS_PPM_H_
#define MAGI_PHYSICS_PPM_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/media/rgb_frame.h"

namespace magi {
namespace physics {

inline constexpr int kMaxPpmSide = 4096;

absl::Status WritePpm(const std::string& path, const RgbFrame& frame);
absl::StatusOr<RgbFrame> ReadPpm(const std::string& path);

// The name of frame `index` in a frame folder: "frame_0007.ppm".
std::string FrameFileName(int index);

// Writes frames[i] to dir/FrameFileName(i); dir must exist.
absl::Status WriteFrameFolder(const std::string& dir, const std::vector<RgbFrame>& frames);

// Reads dir/frame_0000.ppm, frame_0001.ppm, ... up to the first missing index (at most
// max_frames). NotFound when there is no frame_0000.ppm.
absl::StatusOr<std::vector<RgbFrame>> ReadFrameFolder(const std::string& dir, int max_frames);

}  // namespace physics
}  // namespace magi

#endif  // MAGI_PHYSICS_PPM_H_
