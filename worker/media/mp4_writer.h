// Whole-video MP4 output: RGB frames -> H.264 (libx264, yuv420p) in a plain MP4, the
// reference's final output step (pipeline spec §6), into memory or a file.
//
// For streaming chunk by chunk use FragmentedMp4Encoder (fragmented_mp4_encoder.h).
//
// Thread safety: the functions are reentrant; concurrent calls share nothing.
#ifndef MAGI_WORKER_MEDIA_MP4_WRITER_H_
#define MAGI_WORKER_MEDIA_MP4_WRITER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/media/rgb_frame.h"
#include "worker/media/video_encode_options.h"

namespace magi {

// Encodes `frames` (at least one; all the same even width x height, each with
// width*height*3 bytes) at options.fps and returns the MP4 file bytes.
// InvalidArgument names the offending frame or option.
absl::StatusOr<std::string> EncodeMp4(const std::vector<RgbFrame>& frames,
                                      const VideoEncodeOptions& options = {});

// EncodeMp4, then writes the bytes to `path` (via a temporary file in the same directory
// renamed into place, so readers never see a partial file). Errors name the path.
absl::Status WriteMp4File(const std::string& path, const std::vector<RgbFrame>& frames,
                          const VideoEncodeOptions& options = {});

}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_MP4_WRITER_H_
