#include "server/request_validator.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

absl::Status CheckScale(const std::string& field, float value, float hi) {
  if (value == 0.0f) return absl::OkStatus();
  if (!std::isfinite(value) || value < 1.0f || value > hi) {
    return Bad(field, absl::StrCat(value, " is out of range; allowed 0 (model default) or [1, ",
                                   hi, "]"));
  }
  return absl::OkStatus();
}

}  // namespace

int ChunkCount(int num_frames, int frames_per_chunk) {
  if (frames_per_chunk <= 0) return 0;
  return (num_frames + frames_per_chunk - 1) / frames_per_chunk;
}

absl::StatusOr<ValidatedRequest> ValidateGenerateRequest(const GenerateRequest& in,
                                                         const ModelCatalog& catalog,
                                                         int64_t now_unix_ms,
                                                         const RequestLimits& limits) {
  ValidatedRequest out;
  GenerateRequest& r = out.request;
  r = in;

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
  const ModelInfo& m = out.model;
  r.set_model(m.name());

  if (!::magi::v1::Mode_IsValid(in.mode())) {
    return Bad("mode", absl::StrCat(in.mode(), " is not a mode; allowed MODE_T2V (1), MODE_I2V (2), "
                                    "MODE_V2V (3)"));
  }
  if (in.mode() == ::magi::v1::MODE_UNSPECIFIED) r.set_mode(::magi::v1::MODE_T2V);

  // Sizes and timing, defaults first.
  if (r.num_frames() == 0) r.set_num_frames(m.default_frames());
  if (r.width() == 0) r.set_width(m.default_width());
  if (r.height() == 0) r.set_height(m.default_height());
  if (r.fps() == 0) r.set_fps(m.default_fps());
  if (r.num_steps() == 0) r.set_num_steps(m.default_steps());
  if (auto s = CheckRange("num_frames", r.num_frames(), 1, m.max_frames()); !s.ok()) return s;
  if (auto s = CheckRange("width", r.width(), 16, m.max_width()); !s.ok()) return s;
  if (auto s = CheckRange("height", r.height(), 16, m.max_height()); !s.ok()) return s;
  if (r.width() % 16 != 0) return Bad("width", absl::StrCat(r.width(), " is not a multiple of 16"));
  if (r.height() % 16 != 0) return Bad("height", absl::StrCat(r.height(), " is not a multiple of 16"));
  if (auto s = CheckRange("fps", r.fps(), 1, limits.max_fps); !s.ok()) return s;
  if (auto s = CheckRange("num_steps", r.num_steps(), 1, m.max_steps()); !s.ok()) return s;
  if (r.seed() < 0) return Bad("seed", absl::StrCat(r.seed(), " is negative; allowed [0, 2^63)"));
  out.chunks_total = ChunkCount(r.num_frames(), m.frames_per_chunk());

  // Guidance.
  if (auto s = CheckScale("guidance.text_scale", r.guidance().text_scale(), limits.max_guidance_scale);
      !s.ok()) return s;
  if (auto s = CheckScale("guidance.prefix_scale", r.guidance().prefix_scale(),
                          limits.max_guidance_scale); !s.ok()) return s;
  int cfg = r.guidance().cfg_number();
  if (cfg != 0 && cfg != 1 && cfg != 3) {
    return Bad("guidance.cfg_number", absl::StrCat(cfg, " is not allowed; allowed 0 (default), 1 or 3"));
  }

  // Scheduling.
  if (auto s = CheckRange("priority", r.priority(), 0, limits.max_priority); !s.ok()) return s;
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

  // Prompts.
  if (r.prompts_size() == 0) {
    return Bad("prompts", "at least one prompt is required (prompts[0].from_chunk = 0)");
  }
  if (r.prompts_size() > out.chunks_total) {
    return Bad("prompts", absl::StrCat(r.prompts_size(), " prompts for ", out.chunks_total,
                                       " chunks; at most one prompt per chunk"));
  }
  int64_t total = 0;
  for (int i = 0; i < r.prompts_size(); ++i) {
    const auto& p = r.prompts(i);
    std::string field = absl::StrCat("prompts[", i, "]");
    if (static_cast<int64_t>(p.text().size()) > limits.max_prompt_bytes) {
      return Bad(field + ".text", absl::StrCat(p.text().size(), " bytes; at most ",
                                               limits.max_prompt_bytes));
    }
    total += p.text().size();
    if (i == 0 && p.from_chunk() != 0) {
      return Bad(field + ".from_chunk", absl::StrCat(p.from_chunk(), "; the first prompt must start at chunk 0"));
    }
    if (i > 0 && p.from_chunk() <= r.prompts(i - 1).from_chunk()) {
      return Bad(field + ".from_chunk", absl::StrCat(p.from_chunk(), " does not increase; allowed [",
                                                     r.prompts(i - 1).from_chunk() + 1, ", ",
                                                     out.chunks_total - 1, "]"));
    }
    if (p.from_chunk() >= out.chunks_total) {
      return Bad(field + ".from_chunk", absl::StrCat(p.from_chunk(), " is out of range; allowed [0, ",
                                                     out.chunks_total - 1, "] (", out.chunks_total,
                                                     " chunks)"));
    }
  }
  if (total > limits.max_total_prompt_bytes) {
    return Bad("prompts", absl::StrCat(total, " bytes of text in all; at most ",
                                       limits.max_total_prompt_bytes));
  }

  // Conditioning media.
  const bool i2v = r.mode() == ::magi::v1::MODE_I2V;
  const bool v2v = r.mode() == ::magi::v1::MODE_V2V;
  if (!i2v && !r.image().empty()) return Bad("image", "only allowed with mode MODE_I2V");
  if (!v2v && !r.prefix_video().empty()) return Bad("prefix_video", "only allowed with mode MODE_V2V");
  if (i2v && r.image().empty()) return Bad("image", "required with mode MODE_I2V (JPEG, PNG or WebP bytes)");
  if (v2v && r.prefix_video().empty()) return Bad("prefix_video", "required with mode MODE_V2V (MP4, MOV or WebM bytes)");
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
