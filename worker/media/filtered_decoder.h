// Internal to magi_media: the one decode path behind DecodeImage and DecodePrefixVideo.
//
// Untrusted bytes -> probed demuxer (from an allow-list) -> decoder (from an allow-list,
// with AVCodecContext::max_pixels) -> libavfilter graph -> RGB24 frames. The filter graph is
// built the way the ffmpeg command-line tool builds it for the reference's commands
// (pipeline spec §1.2-1.3): display-matrix autorotation, `trim=starti=0` for `-ss 0`, the
// caller's chain (e.g. `fps=fps=24,scale=W:H`), a final `format=rgb24`, and swscale flags
// `bicubic` for every scale filter. That makes the output bit-identical to the reference's
// ffmpeg subprocess without spawning one.
//
// Thread safety: reentrant; each call owns all of its FFmpeg state.
#ifndef MAGI_WORKER_MEDIA_FILTERED_DECODER_H_
#define MAGI_WORKER_MEDIA_FILTERED_DECODER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/media/media_limits.h"
#include "worker/media/rgb_frame.h"

namespace magi {
namespace media_internal {

struct FilteredDecodeRequest {
  absl::string_view name;   // names the input in every error ("image 'cat.png'")
  absl::string_view bytes;  // the whole input
  // Demuxer names (AVInputFormat::name) accepted after probing, and how to describe them in
  // an error ("a JPEG, PNG or WebP image").
  std::vector<std::string> demuxers;
  std::string expected_kind;
  std::vector<std::string> codecs;  // decoder names (avcodec_get_name) accepted
  std::string filters;              // e.g. "fps=fps=24,scale=1280:720"
  int out_width = 0;                // the size `filters` produces
  int out_height = 0;
  int max_output_frames = 1;  // stop after this many frames (the CLI's -vframes / a prefix cut)
  bool cli_timestamps = false;  // shift by the container start time and trim to >= 0 (-ss 0)
  bool autorotate = true;       // apply the stream's display matrix as ffmpeg does by default
  MediaLimits limits;
};

// At least one frame of out_width x out_height, at most max_output_frames; or an error
// naming `name`: InvalidArgument for bad, unsupported, truncated or over-limit input,
// ResourceExhausted on allocation failure, Internal for FFmpeg misbehaviour.
absl::StatusOr<std::vector<RgbFrame>> DecodeFiltered(const FilteredDecodeRequest& request);

}  // namespace media_internal
}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_FILTERED_DECODER_H_
