// JobSpec: a generation job as the edge accepts it -- the one owner of which requests a model
// can run and of a job's geometry. Built once, from the request (magi.v1.GenerateRequest) and
// the constraints the model declares (magi.internal.v1.ModelInfo), by the server's validator
// and by `magi generate --model_dir`; the assignment carries it to the worker, whose executor,
// runner and encoder only read it.
//
// Geometry (video frames, latent frames, job chunks):
//   num_frames video frames = num_frames / frames_per_latent latent frames (an exact multiple);
//   job chunk k holds video frames [FrameBegin(k), FrameEnd(k)), frames_per_chunk each
//   (= latent_frames_per_chunk x frames_per_latent), the last one trimmed to num_frames;
//   i2v: the image is a 1-latent-frame prefix and the first chunk's first frame;
//   v2v: the prefix video's latent length is known only once it is decoded (the worker does).
//   engine_frames: video frames the engine is asked for after the prefix (t2v num_frames, i2v
//   num_frames - frames_per_latent, v2v one chunk more than num_frames: a partly-prefix chunk
//   decodes to fewer frames; the runner stops once the job's frames are out).
//
// Every refusal is InvalidArgument whose message starts with the field path and states the
// allowed values ("num_steps: 6 is not allowed; ...").
//
// Thread safety: pure functions; reentrant. No LibTorch: the server links it.
#ifndef MAGI_JOBSPEC_JOB_SPEC_H_
#define MAGI_JOBSPEC_JOB_SPEC_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "magi/internal/v1/worker_pool.pb.h"
#include "magi/v1/video_generation.pb.h"
#include "worker/media/video_encode_options.h"

namespace magi {

using JobSpec = ::magi::internal::v1::JobSpec;

// Limits that do not depend on the model.
struct JobLimits {
  int64_t max_prompt_bytes = 16 * 1024;         // one prompt's text
  int64_t max_total_prompt_bytes = 256 * 1024;  // all prompts together
  int max_fps = 120;
  float max_guidance_scale = 20.0f;
};

// Fills the request's defaults from `model`, checks every field that decides what is
// generated (mode and its media being present, sizes, frames, fps, steps, seed, guidance,
// prompts) against `model` and `limits`, and computes the geometry and encoding. Does not
// look at request.model (the caller picked `model`), scheduling fields or media contents.
absl::StatusOr<JobSpec> BuildJobSpec(const ::magi::v1::GenerateRequest& request,
                                     const ::magi::internal::v1::ModelInfo& model,
                                     const JobLimits& limits = {});

// A live prompt change (magi.v1 UpdatePrompt) of a job built from `request`: InvalidArgument
// naming "text" when it is empty, longer than limits.max_prompt_bytes, or would take the
// job's prompts past limits.max_total_prompt_bytes (BuildJobSpec's rules, checked as if the
// change replaced no prompt).
absl::Status CheckPromptUpdate(const ::magi::v1::GenerateRequest& request, const std::string& text,
                               const JobLimits& limits = {});
// `request`'s prompts with `text` used from job chunk `from_chunk` on: prompts starting at or
// after it are replaced (from_chunk 0 replaces them all). Re-validate the result with
// BuildJobSpec (the total prompt bytes). InvalidArgument for a negative from_chunk.
absl::Status ApplyPromptFrom(int from_chunk, const std::string& text, ::magi::v1::GenerateRequest* request);

// First video frame of job chunk `chunk`, and one past its last (trimmed to num_frames).
int FrameBegin(const JobSpec& spec, int chunk);
int FrameEnd(const JobSpec& spec, int chunk);

// The encoder settings the spec fixes (fps from the request; preset, CRF, threads).
VideoEncodeOptions EncodeOptions(const JobSpec& spec);

}  // namespace magi

#endif  // MAGI_JOBSPEC_JOB_SPEC_H_
