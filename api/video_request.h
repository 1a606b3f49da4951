// The requests of the OpenAI-compatible Videos API, parsed from multipart/form-data or JSON
// and mapped onto magi.v1.GenerateRequest. Field names follow OpenAI's Videos API
// (POST /v1/videos: prompt, model, seconds, size "WxH", input_reference) plus our extensions
// (chunk_prompts, seed, steps, priority, fps).
//
// This layer checks only form: types, syntax ("WxH"), unknown fields. Whether the model can
// make the video (sizes, frame counts, steps, prompts) is the JobSpec's call
// (jobspec/job_spec.h, behind JobManager::Submit); SubmitErrorToApi translates its refusals
// back into the API's field names, so "num_frames: ..." reaches the client as param
// "seconds".
//
// Thread safety: pure functions.
#ifndef MAGI_API_VIDEO_REQUEST_H_
#define MAGI_API_VIDEO_REQUEST_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/api_error.h"
#include "magi/internal/v1/worker_pool.pb.h"
#include "magi/v1/video_generation.pb.h"

namespace magi {

// POST /v1/videos as sent, names as the API spells them.
struct VideoCreateParams {
  std::string prompt;                  // required
  std::string model;                   // empty = the server's default model
  std::optional<double> seconds;       // clip length; with fps it fixes num_frames
  std::string seconds_text;            // as sent, for messages
  std::optional<int> width, height;    // from size "WxH"
  std::string size_text;
  std::string input_reference;         // image bytes (i2v); empty = t2v
  std::string prefix_video;            // video bytes to continue (v2v; extensions only)
  // Extensions. chunk_prompts: the prompt from chunk `from_chunk` on (prompt is chunk 0's).
  std::vector<::magi::v1::ChunkPrompt> chunk_prompts;
  std::optional<int64_t> seed;
  std::optional<int> steps, priority, fps;
};

// POST /v1/videos/{id}/remix: a new prompt for the same settings.
struct VideoRemixParams {
  std::string prompt;
};

// POST /v1/videos/extensions: MAGI-1's video continuation (v2v). `video` names what to
// continue: a completed video of this tenant (multipart `video[id]`, JSON {"video": {"id"}})
// or an uploaded MP4/MOV/WebM (multipart file `video`, then in params.prefix_video). The other
// fields are a create's, without input_reference; `seconds` is the new segment's length.
struct VideoExtendParams {
  VideoCreateParams params;
  std::string video_id;  // empty when the video was uploaded
};

// The fields a create request may carry (for unknown-field messages and docs).
const std::vector<std::string>& VideoCreateFields();
// The fields an extension request may carry.
const std::vector<std::string>& VideoExtendFields();

// Parses a create request; `content_type` picks the form (multipart/form-data or
// application/json). InvalidArgument whose message starts with the field (or
// "Content-Type") and says what is allowed.
absl::StatusOr<VideoCreateParams> ParseVideoCreate(absl::string_view content_type, absl::string_view body,
                                                   int max_parts = 64);
// Parses an extension request; exactly one source (video[id] or an uploaded video) is
// required. Errors as ParseVideoCreate's.
absl::StatusOr<VideoExtendParams> ParseVideoExtend(absl::string_view content_type, absl::string_view body,
                                                   int max_parts = 64);
absl::StatusOr<VideoRemixParams> ParseVideoRemix(absl::string_view content_type, absl::string_view body,
                                                 int max_parts = 64);

// The GenerateRequest for `params`. `model` is the catalog's entry for params.model (null
// when unknown: Submit then refuses the model by name); its default fps turns `seconds` into
// num_frames when `fps` is not given.
::magi::v1::GenerateRequest ToGenerateRequest(const VideoCreateParams& params, const ::magi::internal::v1::ModelInfo* model);

// A refusal of JobManager::Submit for a request made by ToGenerateRequest(params), in the
// API's terms: the GenerateRequest field at the head of the message becomes the API field
// (num_frames -> seconds, width/height -> size, num_steps -> steps, image/mode ->
// input_reference (video for an extension), prefix_video -> video, prompts[0] -> prompt,
// prompts[k] -> chunk_prompts[k-1]).
// `model` as given to ToGenerateRequest (its default fps explains a seconds refusal).
ApiError SubmitErrorToApi(const absl::Status& status, const VideoCreateParams& params,
                          const ::magi::v1::GenerateRequest& request, const ::magi::internal::v1::ModelInfo* model);

// "a=1&b=x%20y" -> {a: "1", b: "x y"}. InvalidArgument naming the parameter on bad
// percent-encoding or a repeated name.
absl::StatusOr<std::map<std::string, std::string>> ParseQueryString(absl::string_view query);

}  // namespace magi

#endif  // MAGI_API_VIDEO_REQUEST_H_
