#include "worker/main/job_executor.h"

#include "absl/strings/str_cat.h"
#include "worker/media/fragmented_mp4_encoder.h"
#include "worker/media/video_encode_options.h"

namespace magi {

using ::magi::internal::v1::WorkerMessage;

JobExecutor::JobExecutor(JobRunner& runner, const ::magi::internal::v1::Assignment& a, SendFn send)
    : runner_(runner), attempt_(a.attempt()), send_(std::move(send)) {
  job_.job_id = a.job_id();
  job_.request = a.request();
  job_.start_chunk = a.start_chunk();
  job_.chunks_total = a.chunks_total();
  job_.frames_per_chunk = a.frames_per_chunk();
  job_.done_video = a.done_video();
}

JobExecutor::~JobExecutor() = default;

absl::Status JobExecutor::Run() {
  start_ = absl::Now();
  absl::Status status = [&]() -> absl::Status {
    VideoEncodeOptions options;
    options.fps = job_.request.fps();
    options.preset = "veryfast";
    // One encoder thread: x264's output is then a pure function of the frames, so a resumed
    // job re-creates byte-identical fragments.
    options.threads = 1;
    auto encoder = FragmentedMp4Encoder::Create(job_.request.width(), job_.request.height(), options);
    if (!encoder.ok()) return encoder.status();
    encoder_ = std::move(*encoder);
    auto init = encoder_->Init();
    if (!init.ok()) return init.status();
    init_segment_ = std::move(*init);
    if (auto s = runner_.Run(job_, *this); !s.ok()) return s;
    return encoder_->Finish().status();
  }();
  if (cancelled_ && status.ok()) status = absl::CancelledError("cancelled");
  WorkerMessage done;
  done.mutable_done()->set_job_id(job_.job_id);
  done.mutable_done()->set_attempt(attempt_);
  done.mutable_done()->set_code(static_cast<int>(status.code()));
  done.mutable_done()->set_message(std::string(status.message()));
  send_(done);
  return status;
}

absl::Status JobExecutor::OnPrefixChunk(int /*index*/, const std::vector<RgbFrame>& frames) {
  return encoder_->AddChunk(frames).status();
}

absl::Status JobExecutor::OnChunk(int index, const std::vector<RgbFrame>& frames) {
  auto fragment = encoder_->AddChunk(frames);
  if (!fragment.ok()) return fragment.status();
  WorkerMessage m;
  auto* c = m.mutable_chunk();
  c->set_job_id(job_.job_id);
  c->set_attempt(attempt_);
  c->set_index(index);
  c->set_frame_begin(job_.FrameBegin(index));
  c->set_frame_end(job_.FrameEnd(index));
  if (index == 0) c->set_init_segment(init_segment_);
  c->set_fragment(std::move(*fragment));
  c->set_runner_seconds(absl::ToDoubleSeconds(absl::Now() - start_));
  c->set_ready_unix_ns(absl::ToUnixNanos(absl::Now()));
  if (!send_(m)) {
    cancelled_ = true;
    return absl::UnavailableError("server stream gone");
  }
  return absl::OkStatus();
}

void JobExecutor::OnProgress(const StepProgress& p) {
  WorkerMessage m;
  auto* g = m.mutable_progress();
  g->set_job_id(job_.job_id);
  g->set_attempt(attempt_);
  g->set_chunk(p.chunk);
  g->set_chunks_total(job_.chunks_total);
  g->set_step(p.step);
  g->set_total_steps(p.total_steps);
  g->set_eta_seconds(p.eta_seconds);
  g->set_step_seconds(p.step_seconds);
  if (!send_(m)) cancelled_ = true;
}

}  // namespace magi
