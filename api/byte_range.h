// HTTP Range requests (RFC 9110 §14) on a file of known size: the one byte range the
// content route serves. A client asking for several ranges gets the whole file (200), as
// the RFC allows; a range past the end is unsatisfiable (416).
//
// Thread safety: pure function.
#ifndef MAGI_API_BYTE_RANGE_H_
#define MAGI_API_BYTE_RANGE_H_

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace magi {

struct ByteRange {
  int64_t first = 0;  // inclusive
  int64_t last = 0;   // inclusive
  int64_t length() const { return last - first + 1; }
};

// The range a Range header value asks for in a file of `size` bytes: nullopt for the whole
// file (no header, another unit, several ranges, or syntax the RFC says to ignore);
// OutOfRange when it cannot be satisfied (answer 416 with "Content-Range: bytes */size").
absl::StatusOr<std::optional<ByteRange>> ParseByteRange(absl::string_view header, int64_t size);

}  // namespace magi

#endif  // MAGI_API_BYTE_RANGE_H_
