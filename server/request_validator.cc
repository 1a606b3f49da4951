#include "server/request_validator.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "worker/media/image_decoder.h"
#include "worker/media/prefix_video_decoder.h"

namespace magi {
namespace {

using ::magi::v1::GenerateRequest;

absl::Status Bad(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckRange(const std::string& field, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    return Bad(field, absl::StrCat(value, " is out of range; allowed [", lo, ", ", hi, "]"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ValidatedRequest> ValidateGenerateRequest(const GenerateRequest& in,
                                                         const ModelCatalog& catalog,
                                                         int64_t now_unix_ms,
                                                         const RequestLimits& limits) {
  ValidatedRequest out;
  if (static_cast<int64_t>(in.model().size()) > limits.max_model_name_bytes) {
    return Bad("model", absl::StrCat("name of ", in.model().size(), " bytes; at most ",
                                     limits.max_model_name_bytes));
  }
  std::optional<ModelInfo> model = catalog.Find(in.model());
  if (!model) {
    return Bad("model", absl::StrCat("unknown model '", in.model(), "'; known models: ",
                                     absl::StrJoin(catalog.Names(), ", ")));
  }
  out.model = *model;
  MAGI_ASSIGN_OR_RETURN(out.spec, BuildJobSpec(in, out.model, limits.job));
  const GenerateRequest& r = out.spec.request();

  // Scheduling.
  MAGI_RETURN_IF_ERROR(CheckRange("priority", r.priority(), 0, limits.max_priority));
  if (r.deadline_unix_ms() < 0) {
    return Bad("deadline_unix_ms", absl::StrCat(r.deadline_unix_ms(), " is negative; 0 = no deadline"));
  }
  if (r.deadline_unix_ms() > 0) {
    if (r.deadline_unix_ms() > now_unix_ms + limits.max_deadline_ahead_ms) {
      return Bad("deadline_unix_ms", absl::StrCat("more than ", limits.max_deadline_ahead_ms / 1000,
                                                  " s ahead; allowed (now, now + 7 days]"));
    }
    if (r.deadline_unix_ms() <= now_unix_ms) {
      return absl::DeadlineExceededError(absl::StrCat(
          "deadline_unix_ms: ", r.deadline_unix_ms(), " already passed (now ", now_unix_ms, ")"));
    }
  }
  if (static_cast<int>(r.idempotency_key().size()) > limits.max_idempotency_key_bytes) {
    return Bad("idempotency_key", absl::StrCat(r.idempotency_key().size(), " bytes; at most ",
                                               limits.max_idempotency_key_bytes));
  }

  // Conditioning media: its presence per mode is the JobSpec's; size and contents here.
  const bool i2v = r.mode() == ::magi::v1::MODE_I2V;
  const bool v2v = r.mode() == ::magi::v1::MODE_V2V;
  if (static_cast<int64_t>(r.image().size()) > limits.max_media_bytes) {
    return Bad("image", absl::StrCat(r.image().size(), " bytes; at most ", limits.max_media_bytes));
  }
  if (static_cast<int64_t>(r.prefix_video().size()) > limits.max_media_bytes) {
    return Bad("prefix_video", absl::StrCat(r.prefix_video().size(), " bytes; at most ",
                                            limits.max_media_bytes));
  }
  if (limits.decode_media && i2v) {
    auto frame = DecodeImage("image", r.image(), r.width(), r.height());
    if (!frame.ok()) return Bad("image", std::string(frame.status().message()));
  }
  if (limits.decode_media && v2v) {
    auto frames = DecodePrefixVideo("prefix_video", r.prefix_video(), r.width(), r.height(), r.fps(), 1);
    if (!frames.ok()) return Bad("prefix_video", std::string(frames.status().message()));
  }
  return out;
}

}  // namespace magi
