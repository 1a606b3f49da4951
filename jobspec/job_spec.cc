#include "jobspec/job_spec.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace magi {
namespace {

using ::magi::internal::v1::ModelInfo;
using ::magi::v1::GenerateRequest;

absl::Status Bad(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// One prompt's length rule (a submitted prompt and a live update alike).
absl::Status CheckPromptLength(const std::string& field, const std::string& text, const JobLimits& limits) {
  if (static_cast<int64_t>(text.size()) > limits.max_prompt_bytes) {
    return Bad(field, absl::StrCat(text.size(), " bytes; at most ", limits.max_prompt_bytes));
  }
  return absl::OkStatus();
}

int64_t TotalPromptBytes(const GenerateRequest& r) {
  int64_t total = 0;
  for (const auto& p : r.prompts()) total += static_cast<int64_t>(p.text().size());
  return total;
}

// `value` must be a multiple of `multiple` in [lo, hi].
absl::Status CheckMultiple(const std::string& field, int64_t value, int64_t multiple, int64_t lo, int64_t hi,
                           const std::string& why = "") {
  if (value < lo || value > hi || value % multiple != 0) {
    std::string allowed = multiple > 1 ? absl::StrCat("a multiple of ", multiple, why, " in [", lo, ", ", hi, "]")
                                       : absl::StrCat("[", lo, ", ", hi, "]");
    return Bad(field, absl::StrCat(value, " is not allowed; allowed ", allowed));
  }
  return absl::OkStatus();
}

absl::Status CheckScale(const std::string& field, float value, float hi) {
  if (value == 0.0f) return absl::OkStatus();
  if (!std::isfinite(value) || value < 1.0f || value > hi) {
    return Bad(field, absl::StrCat(value, " is out of range; allowed 0 (model default) or [1, ", hi, "]"));
  }
  return absl::OkStatus();
}

int OneIfUnset(int v) { return v > 0 ? v : 1; }

// Sizes are multiples of 16 for every model (the API promises it); the model may ask more.
constexpr int kApiSizeMultiple = 16;

}  // namespace

absl::StatusOr<JobSpec> BuildJobSpec(const GenerateRequest& in, const ModelInfo& m, const JobLimits& limits) {
  // The model's own declaration must be coherent before any request is judged by it.
  const int frames_per_latent = OneIfUnset(m.frames_multiple());
  if (m.frames_per_chunk() < 1 || m.frames_per_chunk() % frames_per_latent != 0 ||
      (m.latent_frames_per_chunk() > 0 && m.latent_frames_per_chunk() * frames_per_latent != m.frames_per_chunk())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model '", m.name(), "': frames_per_chunk ", m.frames_per_chunk(), " must be latent_frames_per_chunk ",
        m.latent_frames_per_chunk(), " x frames_multiple ", frames_per_latent));
  }

  JobSpec spec;
  GenerateRequest& r = *spec.mutable_request();
  r = in;
  r.set_model(m.name());
  if (!::magi::v1::Mode_IsValid(in.mode())) {
    return Bad("mode", absl::StrCat(in.mode(), " is not a mode; allowed MODE_T2V (1), MODE_I2V (2), MODE_V2V (3)"));
  }
  if (in.mode() == ::magi::v1::MODE_UNSPECIFIED) r.set_mode(::magi::v1::MODE_T2V);

  // Defaults first, then every value against what the model runs.
  if (r.num_frames() == 0) r.set_num_frames(m.default_frames());
  if (r.width() == 0) r.set_width(m.default_width());
  if (r.height() == 0) r.set_height(m.default_height());
  if (r.fps() == 0) r.set_fps(m.default_fps());
  if (r.num_steps() == 0) r.set_num_steps(m.default_steps());
  if (r.seed() == 0) r.set_seed(m.default_seed());
  MAGI_RETURN_IF_ERROR(CheckMultiple("num_frames", r.num_frames(), frames_per_latent, frames_per_latent, m.max_frames(),
                                     frames_per_latent > 1 ? " (video frames per latent frame)" : ""));
  const int size_multiple = std::lcm(kApiSizeMultiple, OneIfUnset(m.size_multiple()));
  const int min_size = std::max({16, m.min_size(), size_multiple});
  MAGI_RETURN_IF_ERROR(CheckMultiple("width", r.width(), size_multiple, min_size, m.max_width()));
  MAGI_RETURN_IF_ERROR(CheckMultiple("height", r.height(), size_multiple, min_size, m.max_height()));
  MAGI_RETURN_IF_ERROR(CheckMultiple("fps", r.fps(), 1, 1, limits.max_fps));
  const int steps_multiple = OneIfUnset(m.steps_multiple());
  MAGI_RETURN_IF_ERROR(CheckMultiple("num_steps", r.num_steps(), steps_multiple, steps_multiple, m.max_steps()));
  if (r.seed() < 0) return Bad("seed", absl::StrCat(r.seed(), " is negative; allowed [0, 2^63)"));

  // Guidance.
  MAGI_RETURN_IF_ERROR(CheckScale("guidance.text_scale", r.guidance().text_scale(), limits.max_guidance_scale));
  MAGI_RETURN_IF_ERROR(CheckScale("guidance.prefix_scale", r.guidance().prefix_scale(), limits.max_guidance_scale));
  std::vector<int> cfgs(m.cfg_numbers().begin(), m.cfg_numbers().end());
  if (cfgs.empty()) cfgs = {1, 3};
  const int cfg = r.guidance().cfg_number();
  if (cfg != 0 && std::find(cfgs.begin(), cfgs.end(), cfg) == cfgs.end()) {
    return Bad("guidance.cfg_number", absl::StrCat(cfg, " is not allowed for model '", m.name(), "'; allowed 0 (default) or ",
                                                   absl::StrJoin(cfgs, " or ")));
  }

  // Geometry.
  spec.set_frames_per_chunk(m.frames_per_chunk());
  spec.set_frames_per_latent(frames_per_latent);
  spec.set_latent_frames_per_chunk(m.frames_per_chunk() / frames_per_latent);
  const int chunks = (r.num_frames() + m.frames_per_chunk() - 1) / m.frames_per_chunk();
  spec.set_chunks_total(chunks);

  // Prompts.
  if (r.prompts_size() == 0) return Bad("prompts", "at least one prompt is required (prompts[0].from_chunk = 0)");
  if (r.prompts_size() > chunks) {
    return Bad("prompts", absl::StrCat(r.prompts_size(), " prompts for ", chunks, " chunks; at most one prompt per chunk"));
  }
  for (int i = 0; i < r.prompts_size(); ++i) {
    const auto& p = r.prompts(i);
    const std::string field = absl::StrCat("prompts[", i, "]");
    MAGI_RETURN_IF_ERROR(CheckPromptLength(field + ".text", p.text(), limits));
    if (i == 0 && p.from_chunk() != 0) {
      return Bad(field + ".from_chunk", absl::StrCat(p.from_chunk(), "; the first prompt must start at chunk 0"));
    }
    if (i > 0 && p.from_chunk() <= r.prompts(i - 1).from_chunk()) {
      return Bad(field + ".from_chunk", absl::StrCat(p.from_chunk(), " does not increase; allowed [",
                                                     r.prompts(i - 1).from_chunk() + 1, ", ", chunks - 1, "]"));
    }
    if (p.from_chunk() >= chunks) {
      return Bad(field + ".from_chunk", absl::StrCat(p.from_chunk(), " is out of range; allowed [0, ", chunks - 1, "] (",
                                                     chunks, " chunks)"));
    }
  }
  if (const int64_t total = TotalPromptBytes(r); total > limits.max_total_prompt_bytes) {
    return Bad("prompts", absl::StrCat(total, " bytes of text in all; at most ", limits.max_total_prompt_bytes));
  }

  // Conditioning media: present exactly in its mode (contents are the caller's to decode).
  const bool i2v = r.mode() == ::magi::v1::MODE_I2V;
  const bool v2v = r.mode() == ::magi::v1::MODE_V2V;
  if (!i2v && !r.image().empty()) return Bad("image", "only allowed with mode MODE_I2V");
  if (!v2v && !r.prefix_video().empty()) return Bad("prefix_video", "only allowed with mode MODE_V2V");
  if (i2v && r.image().empty()) return Bad("image", "required with mode MODE_I2V (JPEG, PNG or WebP bytes)");
  if (v2v && r.prefix_video().empty()) return Bad("prefix_video", "required with mode MODE_V2V (MP4, MOV or WebM bytes)");
  if (i2v) {
    spec.set_prefix_latent_frames(1);
    spec.set_engine_frames(r.num_frames() - frames_per_latent);
  } else if (v2v) {
    spec.set_engine_frames(r.num_frames() + m.frames_per_chunk());
  } else {
    spec.set_engine_frames(r.num_frames());
  }

  // Encoding: one x264 thread makes the bytes a pure function of the frames, so a resumed
  // attempt re-creates identical fragments and a local run equals a served one.
  auto* e = spec.mutable_encode();
  e->set_fps(r.fps());
  e->set_crf(23);
  e->set_preset("veryfast");
  e->set_threads(1);
  return spec;
}

absl::Status CheckPromptUpdate(const GenerateRequest& request, const std::string& text, const JobLimits& limits) {
  if (text.empty()) return Bad("text", "empty; a prompt update needs the new prompt's text");
  MAGI_RETURN_IF_ERROR(CheckPromptLength("text", text, limits));
  const int64_t total = TotalPromptBytes(request) + static_cast<int64_t>(text.size());
  if (total > limits.max_total_prompt_bytes) {
    return Bad("text", absl::StrCat("the job's prompts would hold ", total, " bytes of text; at most ",
                                    limits.max_total_prompt_bytes));
  }
  return absl::OkStatus();
}

absl::Status ApplyPromptFrom(int from_chunk, const std::string& text, ::magi::v1::GenerateRequest* request) {
  if (from_chunk < 0) return Bad("from_chunk", absl::StrCat(from_chunk, " is negative"));
  auto* prompts = request->mutable_prompts();
  while (!prompts->empty() && prompts->rbegin()->from_chunk() >= from_chunk) prompts->RemoveLast();
  ::magi::v1::ChunkPrompt* p = prompts->Add();
  p->set_from_chunk(from_chunk);
  p->set_text(text);
  return absl::OkStatus();
}

int FrameBegin(const JobSpec& spec, int chunk) { return chunk * spec.frames_per_chunk(); }

int FrameEnd(const JobSpec& spec, int chunk) {
  return std::min((chunk + 1) * spec.frames_per_chunk(), spec.request().num_frames());
}

VideoEncodeOptions EncodeOptions(const JobSpec& spec) {
  VideoEncodeOptions o;
  o.fps = spec.encode().fps();
  o.crf = spec.encode().crf();
  o.preset = spec.encode().preset();
  o.threads = spec.encode().threads();
  return o;
}

}  // namespace magi
