#include "worker/media/prefix_video_decoder.h"

#include "absl/strings/str_cat.h"
#include "worker/media/filtered_decoder.h"

namespace magi {

absl::StatusOr<std::vector<RgbFrame>> DecodePrefixVideo(absl::string_view name,
                                                        absl::string_view bytes, int width,
                                                        int height, int fps, int max_frames,
                                                        const MediaLimits& limits) {
  if (fps < 1 || fps > 240) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": fps = ", fps, " is outside the allowed range [1, 240]"));
  }
  media_internal::FilteredDecodeRequest r;
  r.name = name;
  r.bytes = bytes;
  r.demuxers = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"};
  r.expected_kind = "an MP4, MOV or WebM video";
  r.codecs = {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "prores", "mjpeg"};
  r.filters = absl::StrCat("fps=fps=", fps, ",scale=", width, ":", height);
  r.out_width = width;
  r.out_height = height;
  r.max_output_frames = max_frames;
  r.cli_timestamps = true;
  r.autorotate = true;
  r.limits = limits;
  return media_internal::DecodeFiltered(r);
}

}  // namespace magi
