#include "worker/runner/synthetic_frame_runner.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "jobspec/builtin_models.h"

namespace magi {
namespace {

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

const std::string& PromptForChunk(const ::magi::v1::GenerateRequest& r, int chunk) {
  static const std::string kEmpty;
  const std::string* text = &kEmpty;
  for (const auto& p : r.prompts()) {
    if (p.from_chunk() <= chunk) text = &p.text();
  }
  return *text;
}

}  // namespace

std::vector<::magi::internal::v1::ModelInfo> SyntheticFrameRunner::Models() const {
  return {SyntheticModelInfo()};
}

RgbFrame SyntheticFrameRunner::MakeFrame(const ::magi::v1::GenerateRequest& r, int t,
                                         uint64_t prompt_hash) {
  const int w = r.width(), h = r.height();
  RgbFrame f(w, h);
  const uint64_t seed = static_cast<uint64_t>(r.seed());
  const int shift = static_cast<int>((seed * 2654435761u) & 0xff);
  const int tint = static_cast<int>(prompt_hash & 0xff);
  const int sq = std::max(4, std::min(w, h) / 4);
  const int sx = (t * 3 + shift) % std::max(1, w - sq);
  const int sy = (t * 2 + tint) % std::max(1, h - sq);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = f.Pixel(x, y);
      bool in_square = x >= sx && x < sx + sq && y >= sy && y < sy + sq;
      p[0] = static_cast<uint8_t>(in_square ? 255 - tint : (x * 255 / w + t * 4 + shift) & 0xff);
      p[1] = static_cast<uint8_t>(in_square ? 255 : (y * 255 / h + t * 2) & 0xff);
      p[2] = static_cast<uint8_t>(in_square ? shift : (tint + (x + y) / 4) & 0xff);
    }
  }
  return f;
}

std::vector<RgbFrame> SyntheticFrameRunner::MakeChunk(const RunnerJob& job, const ::magi::v1::GenerateRequest& request,
                                                     int chunk) {
  uint64_t prompt_hash = Fnv1a(PromptForChunk(request, chunk));
  std::vector<RgbFrame> frames;
  for (int t = job.FrameBegin(chunk); t < job.FrameEnd(chunk); ++t) {
    frames.push_back(MakeFrame(job.request(), t, prompt_hash));
  }
  return frames;
}

absl::Status SyntheticFrameRunner::Run(const RunnerJob& job, FrameSink& sink) {
  if (job.spec.frames_per_chunk() < 1 || job.chunks_total() < 1 || job.start_chunk < 0 ||
      job.start_chunk > job.chunks_total()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "assignment: frames_per_chunk ", job.spec.frames_per_chunk(), ", chunks_total ", job.chunks_total(),
        ", start_chunk ", job.start_chunk, " are inconsistent"));
  }
  for (int c = 0; c < job.start_chunk; ++c) {
    MAGI_RETURN_IF_ERROR(sink.OnPrefixChunk(c, MakeChunk(job, job.request(), c)));
  }
  const int steps = std::max(1, job.request().num_steps());
  absl::Time begin = absl::Now();
  int done_steps = 0;
  const int todo_steps = steps * (job.chunks_total() - job.start_chunk);
  ::magi::v1::GenerateRequest request = job.request();  // live prompt updates go into its prompts
  for (int c = job.start_chunk; c < job.chunks_total(); ++c) {
    MAGI_ASSIGN_OR_RETURN(std::optional<LivePrompt> live, sink.TakeLivePrompt(c));
    if (live) {
      MAGI_RETURN_IF_ERROR(ApplyPromptFrom(c, live->text, &request));
      sink.OnLivePromptApplied(*live, c);
    }
    for (int s = 0; s < steps; ++s) {
      if (sink.Cancelled()) return absl::CancelledError(absl::StrCat("job ", job.job_id, " cancelled"));
      absl::Time step_begin = absl::Now();
      if (step_delay_ > absl::ZeroDuration()) absl::SleepFor(step_delay_);
      ++done_steps;
      if (hang_after_steps_ > 0 && done_steps > hang_after_steps_) {
        for (;;) absl::SleepFor(absl::Hours(1));  // test hook: a wedged step never returns
      }
      double elapsed = absl::ToDoubleSeconds(absl::Now() - begin);
      StepProgress p;
      p.chunk = c;
      p.step = s + 1;
      p.total_steps = steps;
      p.step_seconds = absl::ToDoubleSeconds(absl::Now() - step_begin);
      p.eta_seconds = elapsed / done_steps * (todo_steps - done_steps);
      sink.OnProgress(p);
    }
    if (sink.Cancelled()) return absl::CancelledError(absl::StrCat("job ", job.job_id, " cancelled"));
    MAGI_RETURN_IF_ERROR(sink.OnChunk(c, MakeChunk(job, request, c)));
  }
  return absl::OkStatus();
}

}  // namespace magi
