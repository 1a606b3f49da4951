#include "worker/media/image_header.h"

#include <cstdint>
#include <cstring>

namespace magi {
namespace media_internal {
namespace {

uint32_t Be16(const unsigned char* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t Be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint32_t Le16(const unsigned char* p) { return uint32_t{p[0]} | (uint32_t{p[1]} << 8); }
uint32_t Le24(const unsigned char* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16);
}
uint32_t Le32(const unsigned char* p) { return Le24(p) | (uint32_t{p[3]} << 24); }

std::optional<DeclaredSize> Png(const unsigned char* p, size_t n) {
  // Signature, then the IHDR chunk: length(4) "IHDR" width(4) height(4).
  if (n < 24 || std::memcmp(p + 12, "IHDR", 4) != 0) return std::nullopt;
  return DeclaredSize{Be32(p + 16), Be32(p + 20)};
}

std::optional<DeclaredSize> Jpeg(const unsigned char* p, size_t n) {
  size_t i = 2;  // after SOI
  while (i + 4 <= n) {
    if (p[i] != 0xFF) return std::nullopt;
    const unsigned char marker = p[i + 1];
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      i += 2;  // markers without a length
      continue;
    }
    const uint32_t len = Be16(p + i + 2);
    if (len < 2) return std::nullopt;
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 &&
                     marker != 0xCC;
    if (sof) {
      if (i + 9 > n) return std::nullopt;
      return DeclaredSize{Be16(p + i + 7), Be16(p + i + 5)};  // height precedes width
    }
    if (marker == 0xDA || marker == 0xD9) return std::nullopt;  // scan before any frame
    i += 2 + len;
  }
  return std::nullopt;
}

std::optional<DeclaredSize> Webp(const unsigned char* p, size_t n) {
  // RIFF <size> WEBP, then the first chunk: fourcc(4) size(4) payload.
  if (n < 30) return std::nullopt;
  const unsigned char* c = p + 12;
  const unsigned char* d = c + 8;
  if (std::memcmp(c, "VP8X", 4) == 0) {
    return DeclaredSize{int64_t{Le24(d + 4)} + 1, int64_t{Le24(d + 7)} + 1};
  }
  if (std::memcmp(c, "VP8L", 4) == 0) {
    if (d[0] != 0x2F) return std::nullopt;
    const uint32_t bits = Le32(d + 1);
    return DeclaredSize{int64_t{bits & 0x3FFF} + 1, int64_t{(bits >> 14) & 0x3FFF} + 1};
  }
  if (std::memcmp(c, "VP8 ", 4) == 0) {
    if (d[3] != 0x9D || d[4] != 0x01 || d[5] != 0x2A) return std::nullopt;
    return DeclaredSize{Le16(d + 6) & 0x3FFF, Le16(d + 8) & 0x3FFF};
  }
  return std::nullopt;
}

}  // namespace

std::optional<DeclaredSize> ReadDeclaredImageSize(absl::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  if (n >= 8 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return Png(p, n);
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return Jpeg(p, n);
  if (n >= 12 && std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WEBP", 4) == 0) {
    return Webp(p, n);
  }
  return std::nullopt;
}

}  // namespace media_internal
}  // namespace magi
