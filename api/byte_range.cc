#include "api/byte_range.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace magi {

absl::StatusOr<std::optional<ByteRange>> ParseByteRange(absl::string_view header, int64_t size) {
  header = absl::StripAsciiWhitespace(header);
  if (header.empty() || !absl::StartsWith(header, "bytes=")) return std::nullopt;
  absl::string_view spec = absl::StripAsciiWhitespace(header.substr(6));
  if (spec.find(',') != absl::string_view::npos) return std::nullopt;  // several ranges: whole file
  size_t dash = spec.find('-');
  if (dash == absl::string_view::npos) return std::nullopt;  // invalid: ignored (RFC 9110 §14.2)
  absl::string_view a = absl::StripAsciiWhitespace(spec.substr(0, dash));
  absl::string_view b = absl::StripAsciiWhitespace(spec.substr(dash + 1));
  auto unsatisfiable = [&] {
    return absl::OutOfRangeError(absl::StrCat("Range: '", header.substr(0, 64), "' is outside the ", size, " bytes"));
  };
  ByteRange r;
  if (a.empty()) {  // suffix: the last N bytes
    int64_t n = 0;
    if (!absl::SimpleAtoi(b, &n) || n < 0) return std::nullopt;
    if (n == 0 || size == 0) return unsatisfiable();
    r.first = n >= size ? 0 : size - n;
    r.last = size - 1;
    return r;
  }
  if (!absl::SimpleAtoi(a, &r.first) || r.first < 0) return std::nullopt;
  if (b.empty()) {
    r.last = size - 1;
  } else if (!absl::SimpleAtoi(b, &r.last) || r.last < r.first) {
    return std::nullopt;
  }
  if (r.first >= size) return unsatisfiable();
  if (r.last >= size) r.last = size - 1;
  return r;
}

}  // namespace magi
