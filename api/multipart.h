// A multipart/form-data (RFC 7578) body parser: the parts of a POST /v1/videos upload, as
// the official SDKs and curl -F send them. Strict: a body that does not follow the framing
// (missing boundary, a part without Content-Disposition form-data and a name, no closing
// delimiter, too many parts) is refused with a message saying what is wrong, never guessed at.
//
// Thread safety: pure function.
#ifndef MAGI_API_MULTIPART_H_
#define MAGI_API_MULTIPART_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace magi {

struct MultipartPart {
  std::string name;          // Content-Disposition name
  std::string filename;      // Content-Disposition filename (empty for a plain field)
  bool is_file = false;      // a filename parameter was present
  std::string content_type;  // the part's Content-Type (empty if none)
  std::string body;
};

// The boundary parameter of a multipart/form-data Content-Type value (quoted or not).
// InvalidArgument if the type is not multipart/form-data or has no usable boundary.
absl::StatusOr<std::string> MultipartBoundary(absl::string_view content_type);

// The parts of `body`, in order. InvalidArgument ("multipart body: ...") on broken framing or
// more than `max_parts` parts.
absl::StatusOr<std::vector<MultipartPart>> ParseMultipartFormData(absl::string_view content_type,
                                                                 absl::string_view body,
                                                                 int max_parts = 64);

}  // namespace magi

#endif  // MAGI_API_MULTIPART_H_
