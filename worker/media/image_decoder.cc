#include "worker/media/image_decoder.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/media/filtered_decoder.h"
#include "worker/media/image_header.h"

namespace magi {

absl::StatusOr<RgbFrame> DecodeImage(absl::string_view name, absl::string_view bytes, int width,
                                     int height, const MediaLimits& limits) {
  // Refuse an absurd declared size up front with a message that says so (the decoder's own
  // max_pixels check would only report "invalid argument").
  if (std::optional<media_internal::DeclaredSize> d =
          media_internal::ReadDeclaredImageSize(bytes)) {
    if (d->width > limits.max_width || d->height > limits.max_height ||
        d->width * d->height > limits.max_pixels) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": the image declares ", d->width, "x", d->height,
          " pixels; allowed are at most ", limits.max_width, " wide, ", limits.max_height,
          " high and ", limits.max_pixels, " pixels"));
    }
  }
  media_internal::FilteredDecodeRequest r;
  r.name = name;
  r.bytes = bytes;
  // What image2pipe picks for these three formats.
  r.demuxers = {"jpeg_pipe", "png_pipe", "webp_pipe"};
  r.expected_kind = "a JPEG, PNG or WebP image";
  r.codecs = {"mjpeg", "png", "webp"};
  r.filters = absl::StrCat("scale=", width, ":", height);
  r.out_width = width;
  r.out_height = height;
  r.max_output_frames = 1;  // -vframes 1
  r.cli_timestamps = false;
  r.autorotate = true;
  r.limits = limits;
  MAGI_ASSIGN_OR_RETURN(std::vector<RgbFrame> frames, media_internal::DecodeFiltered(r));
  return std::move(frames.front());
}

}  // namespace magi
