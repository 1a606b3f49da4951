// ApiError: one error answer of the OpenAI-compatible API, as OpenAI shapes it:
//
//   HTTP <status>  {"error": {"message": "...", "type": "...", "param": "..."|null, "code": "..."|null}}
//
// The official SDKs map the status to their typed errors (400 BadRequestError, 401
// AuthenticationError, 404 NotFoundError, 429 RateLimitError, 503 InternalServerError).
//
// Thread safety: plain values and pure functions.
#ifndef MAGI_API_API_ERROR_H_
#define MAGI_API_API_ERROR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace magi {

struct ApiError {
  int http_status = 400;
  std::string type = "invalid_request_error";
  std::string code;     // empty = null
  std::string param;    // empty = null
  std::string message;
};

// The error JSON body of `error`.
std::string ApiErrorJson(const ApiError& error);

// The field path a house-style message starts with ("num_frames: 7 is ..." -> "num_frames",
// "prompts[2].text: ..." -> "prompts"); empty when the message does not start with one.
std::string LeadingField(absl::string_view message);

// The API error for a status from the job manager or the API layer. InvalidArgument -> 400
// with `param` (or the message's leading field), NotFound -> 404, ResourceExhausted -> 429,
// Unavailable -> 503, Unauthenticated -> 401, FailedPrecondition -> 400, DeadlineExceeded
// -> 400, anything else -> 500.
ApiError ApiErrorFromStatus(const absl::Status& status, const std::string& param = "");

}  // namespace magi

#endif  // MAGI_API_API_ERROR_H_
