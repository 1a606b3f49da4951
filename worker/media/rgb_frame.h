// RgbFrame: one decoded or to-be-encoded video frame as packed RGB24 bytes.
//
// This is the only pixel type crossing the media library's boundary, so the server can use
// the library without tensors. Layout: row-major, no row padding, 3 bytes per pixel (R, G,
// B), i.e. rgb24[(y * width + x) * 3 + c] -- the reference's uint8 THWC layout (pipeline
// spec §1.2: `[1, H, W, 3]` before the permute to NCTHW).
//
// Value semantics; a frame owns its pixels. Not synchronised.
#ifndef MAGI_WORKER_MEDIA_RGB_FRAME_H_
#define MAGI_WORKER_MEDIA_RGB_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace magi {

struct RgbFrame {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb24;  // width * height * 3 bytes

  RgbFrame() = default;
  RgbFrame(int w, int h) : width(w), height(h), rgb24(static_cast<size_t>(w) * h * 3) {}

  size_t ExpectedBytes() const { return static_cast<size_t>(width) * height * 3; }
  uint8_t* Pixel(int x, int y) { return rgb24.data() + (static_cast<size_t>(y) * width + x) * 3; }
  const uint8_t* Pixel(int x, int y) const {
    return rgb24.data() + (static_cast<size_t>(y) * width + x) * 3;
  }
};

}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_RGB_FRAME_H_
