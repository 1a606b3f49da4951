// libFuzzer target for the edge's request validation (ValidateGenerateRequest: every field of
// a GenerateRequest, the JobSpec with its geometry, media decode of image / prefix video): any
// byte string that parses as a GenerateRequest must be accepted or refused with a message
// that starts with the field it names, never a crash, a sanitizer report or a hang. An
// accepted request must have a consistent JobSpec (every default filled in, chunks that cover
// exactly num_frames), and its filled-in request must validate again to the same spec (what
// the server stores and replays on resumption is what it accepted).
// Seeds: fuzz_request_seeds writes serialized requests (t2v, chunk prompts, i2v, v2v, cfg).
#include <cstdint>
#include <cstdlib>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "jobspec/job_spec.h"
#include "proto/utf8_lenient.h"
#include "server/model_catalog.h"
#include "server/request_validator.h"

namespace {

const magi::ModelCatalog& Catalog() {
  static magi::ModelCatalog* catalog = [] {
    auto* c = new magi::ModelCatalog("tiny");  // the built-in tiny model: cfg 1, steps x4
    ::magi::internal::v1::ModelInfo big = c->Find("tiny").value();
    big.set_name("big");
    big.clear_cfg_numbers();
    big.add_cfg_numbers(1);
    big.add_cfg_numbers(3);
    big.set_max_frames(240);
    c->Register("fuzz-group", big);
    return c;
  }();
  return *catalog;
}

bool StartsWithAField(const std::string& m) {
  // "field: ..." or "field[3].sub: ..." (the validator's convention).
  const size_t colon = m.find(": ");
  if (colon == std::string::npos || colon == 0) return false;
  for (size_t i = 0; i < colon; ++i) {
    const char c = m[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '[' || c == ']')) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // As the server reads a request: parsed without protobuf's UTF-8 check, then refused if a
  // string field is not UTF-8 (the gRPC service's Caller() check) before validation.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  ::magi::v1::GenerateRequest request;
  if (!magi::ParseAllowingInvalidUtf8(std::string(reinterpret_cast<const char*>(data), size), &request)) return 0;
  if (magi::FirstInvalidUtf8Field(request).has_value()) return 0;
  magi::RequestLimits limits;
  limits.max_media_bytes = 1 << 20;
  const int64_t now = 1'700'000'000'000;
  auto validated = magi::ValidateGenerateRequest(request, Catalog(), now, limits);
  if (!validated.ok()) {
    const std::string m(validated.status().message());
    if (validated.status().code() == absl::StatusCode::kInvalidArgument && !StartsWithAField(m)) std::abort();
    if (m.empty()) std::abort();
    return 0;
  }
  const magi::JobSpec& spec = validated->spec;
  const ::magi::v1::GenerateRequest& filled = spec.request();
  if (filled.num_frames() <= 0 || filled.width() <= 0 || filled.height() <= 0 || filled.fps() <= 0 ||
      filled.num_steps() <= 0 || filled.prompts_size() == 0) {
    std::abort();
  }
  if (spec.chunks_total() < 1 || spec.frames_per_chunk() < 1) std::abort();
  // The chunks cover [0, num_frames) exactly, in order, none empty.
  if (magi::FrameBegin(spec, 0) != 0) std::abort();
  for (int c = 0; c < spec.chunks_total(); ++c) {
    const int b = magi::FrameBegin(spec, c), e = magi::FrameEnd(spec, c);
    if (e <= b) std::abort();
    if (c + 1 < spec.chunks_total() && magi::FrameBegin(spec, c + 1) != e) std::abort();
  }
  if (magi::FrameEnd(spec, spec.chunks_total() - 1) != filled.num_frames()) std::abort();
  // Idempotent: the filled-in request validates to the same spec.
  auto again = magi::ValidateGenerateRequest(filled, Catalog(), now, limits);
  if (!again.ok()) std::abort();
  if (again->spec.SerializeAsString() != spec.SerializeAsString()) std::abort();
  return 0;
}
