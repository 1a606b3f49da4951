// VideoEncodeOptions: how RGB frames become H.264 (libx264, yuv420p) in MP4.
//
// The defaults reproduce the reference's output step (pipeline spec §6):
// `ffmpeg -f rawvideo -pix_fmt rgb24 -r <fps> ... -pix_fmt yuv420p -vcodec libx264`, i.e. x264's
// own defaults (CRF 23, preset medium, B-frames on), RGB->YUV by swscale bicubic, BT.601
// limited range. On AVX-512 hosts x264 is capped at AVX2 (its AVX-512 kernels are not
// deterministic; see h264_encoder.cc), so with threads = 1 the same frames give the same bytes
// in every run. MP4 bytes still depend on the x264 build and thread count, so tests compare
// decoded frames, never container bytes.
//
// Plain value type; thread-compatible.
#ifndef MAGI_WORKER_MEDIA_VIDEO_ENCODE_OPTIONS_H_
#define MAGI_WORKER_MEDIA_VIDEO_ENCODE_OPTIONS_H_

#include <string>

#include "absl/status/status.h"

namespace magi {

struct VideoEncodeOptions {
  int fps = 24;                   // frames per second, 1..240 (runtime_config.fps)
  int crf = 23;                   // x264 constant rate factor, 0..51
  std::string preset = "medium";  // an x264 preset name (ultrafast ... placebo)
  std::string tune;               // an x264 tune name, empty for none (e.g. "zerolatency")
  int max_b_frames = -1;          // -1: x264's default; the fragmented encoder always uses 0
  int threads = 0;                // encoder threads, 0 = automatic
};

// Ok, or InvalidArgument naming the offending field and its allowed range.
absl::Status ValidateVideoEncodeOptions(const VideoEncodeOptions& options);

}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_VIDEO_ENCODE_OPTIONS_H_
