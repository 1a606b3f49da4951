#include "api/api_error.h"

#include <cctype>

#include "nlohmann/json.hpp"

namespace magi {

std::string ApiErrorJson(const ApiError& error) {
  nlohmann::json e = {{"message", error.message}, {"type", error.type}};
  e["param"] = error.param.empty() ? nlohmann::json(nullptr) : nlohmann::json(error.param);
  e["code"] = error.code.empty() ? nlohmann::json(nullptr) : nlohmann::json(error.code);
  // Replace invalid UTF-8 (an echoed field value) instead of throwing.
  return nlohmann::json{{"error", e}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string LeadingField(absl::string_view message) {
  size_t i = 0;
  while (i < message.size() &&
         (std::isalnum(static_cast<unsigned char>(message[i])) || message[i] == '_' || message[i] == '-')) {
    ++i;
  }
  if (i == 0) return "";
  // A path may continue with [n] and .name before the colon.
  size_t j = i;
  while (j < message.size() && message[j] != ':' && message[j] != ' ') ++j;
  if (j >= message.size() || message[j] != ':') return "";
  return std::string(message.substr(0, i));
}

ApiError ApiErrorFromStatus(const absl::Status& status, const std::string& param) {
  ApiError e;
  e.message = std::string(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      e.http_status = 400;
      e.code = "invalid_value";
      e.param = param.empty() ? LeadingField(status.message()) : param;
      break;
    case absl::StatusCode::kFailedPrecondition:
      e.http_status = 400;
      e.code = "invalid_state";
      e.param = param;
      break;
    case absl::StatusCode::kDeadlineExceeded:
      e.http_status = 400;
      e.code = "deadline_exceeded";
      break;
    case absl::StatusCode::kNotFound:
      e.http_status = 404;
      e.code = "not_found";
      e.param = param;
      break;
    case absl::StatusCode::kResourceExhausted:
      e.http_status = 429;
      e.type = "rate_limit_error";
      e.code = "queue_full";
      break;
    case absl::StatusCode::kUnavailable:
      e.http_status = 503;
      e.type = "server_error";
      e.code = "unavailable";
      break;
    case absl::StatusCode::kUnauthenticated:
      e.http_status = 401;
      e.code = "invalid_api_key";
      break;
    default:
      e.http_status = 500;
      e.type = "server_error";
      e.code = "internal_error";
      break;
  }
  return e;
}

}  // namespace magi
