// Internal to magi_media: reads the picture size a JPEG, PNG or WebP file declares in its
// header, without decoding, so DecodeImage can refuse an absurd size (a decompression bomb:
// a few bytes declaring 100000x100000) with a message that says so, before any decoder
// runs. libavcodec's max_pixels check stays in place as the backstop.
//
// Pure function; thread-safe.
#ifndef MAGI_WORKER_MEDIA_IMAGE_HEADER_H_
#define MAGI_WORKER_MEDIA_IMAGE_HEADER_H_

#include <optional>

#include "absl/strings/string_view.h"

namespace magi {
namespace media_internal {

struct DeclaredSize {
  int64_t width = 0;
  int64_t height = 0;
};

// The declared size, or nullopt when the bytes are not a recognisable JPEG / PNG / WebP
// header (the decoder then reports the problem).
std::optional<DeclaredSize> ReadDeclaredImageSize(absl::string_view bytes);

}  // namespace media_internal
}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_IMAGE_HEADER_H_
