#include "worker/main/job_executor.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/media/fmp4_chunk_writer.h"

namespace magi {

using ::magi::internal::v1::WorkerMessage;

JobExecutor::JobExecutor(JobRunner& runner, const ::magi::internal::v1::Assignment& a, SendFn send)
    : runner_(runner), attempt_(a.attempt()), send_(std::move(send)) {
  job_.job_id = a.job_id();
  job_.spec = a.spec();
  job_.start_chunk = a.start_chunk();
}

JobExecutor::~JobExecutor() = default;

absl::Status JobExecutor::Run() {
  start_ = absl::Now();
  Touch();
  running_ = true;
  absl::Status status = [&]() -> absl::Status {
    if (job_.chunks_total() < 1 || job_.spec.frames_per_chunk() < 1) {
      return absl::InvalidArgumentError(absl::StrCat("assignment.spec: chunks_total ", job_.chunks_total(),
                                                     " and frames_per_chunk ", job_.spec.frames_per_chunk(),
                                                     " must be >= 1 (a server that sends no JobSpec is too old)"));
    }
    MAGI_ASSIGN_OR_RETURN(auto writer, Fmp4ChunkWriter::Create(job_.request().width(), job_.request().height(),
                                                                EncodeOptions(job_.spec)));
    writer_ = std::move(writer);
    MAGI_RETURN_IF_ERROR(runner_.Run(job_, *this));
    return writer_->Finish().status();
  }();
  if (cancelled_ && status.ok()) status = absl::CancelledError("cancelled");
  WorkerMessage done;
  done.mutable_done()->set_job_id(job_.job_id);
  done.mutable_done()->set_attempt(attempt_);
  if (handed_back_ && !status.ok()) {
    // Drained: the server re-queues it from the last sent chunk at once, this attempt not
    // counted.
    done.mutable_done()->set_handed_back(true);
    done.mutable_done()->set_code(static_cast<int>(absl::StatusCode::kAborted));
    done.mutable_done()->set_message("handed back: the worker is draining");
    send_(done);
    running_ = false;
    return status;
  }
  // A live prompt no chunk took: none was left to start. (A handed-back job's stays with the
  // server, which uses it from the chunk the next attempt starts at.)
  std::optional<LivePrompt> unused;
  {
    std::lock_guard<std::mutex> lock(prompt_mu_);
    unused.swap(offered_prompt_);
  }
  if (unused) SendPromptApplied(*unused, -1);
  done.mutable_done()->set_code(static_cast<int>(status.code()));
  done.mutable_done()->set_message(std::string(status.message()));
  send_(done);
  running_ = false;
  return status;
}

absl::Status JobExecutor::OnPrefixChunk(int index, const std::vector<RgbFrame>& frames) {
  Touch();
  return writer_->ReplayChunk(index, frames);
}

absl::Status JobExecutor::OnChunk(int index, const std::vector<RgbFrame>& frames) {
  Touch();
  // Handed back after an earlier chunk: a chunk the runner's delivery had already queued is
  // not sent (the next attempt starts right after the last one sent).
  if (handed_back_) return absl::CancelledError("handed back: the worker is draining");
  MAGI_ASSIGN_OR_RETURN(auto piece, writer_->WriteChunk(index, frames));
  WorkerMessage m;
  auto* c = m.mutable_chunk();
  c->set_job_id(job_.job_id);
  c->set_attempt(attempt_);
  c->set_index(index);
  c->set_frame_begin(job_.FrameBegin(index));
  c->set_frame_end(job_.FrameEnd(index));
  c->set_init_segment(std::move(piece.init_segment));
  c->set_fragment(std::move(piece.fragment));
  c->set_runner_seconds(absl::ToDoubleSeconds(absl::Now() - start_));
  c->set_ready_unix_ns(absl::ToUnixNanos(absl::Now()));
  if (!send_(m)) {
    cancelled_ = true;
    return absl::UnavailableError("server stream gone");
  }
  if (hand_back_ && index + 1 < job_.chunks_total()) {
    handed_back_ = true;
    cancelled_ = true;
  }
  return absl::OkStatus();
}

void JobExecutor::OfferPrompt(const LivePrompt& prompt) {
  std::lock_guard<std::mutex> lock(prompt_mu_);
  offered_prompt_ = prompt;
}

absl::StatusOr<std::optional<LivePrompt>> JobExecutor::TakeLivePrompt(int chunk) {
  (void)chunk;
  std::lock_guard<std::mutex> lock(prompt_mu_);
  std::optional<LivePrompt> out;
  out.swap(offered_prompt_);
  return out;
}

void JobExecutor::OnLivePromptApplied(const LivePrompt& prompt, int chunk) { SendPromptApplied(prompt, chunk); }

void JobExecutor::SendPromptApplied(const LivePrompt& prompt, int chunk) {
  WorkerMessage m;
  auto* a = m.mutable_prompt_applied();
  a->set_job_id(job_.job_id);
  a->set_attempt(attempt_);
  a->set_update_id(prompt.update_id);
  a->set_from_chunk(chunk);
  a->set_text(prompt.text);
  if (!send_(m)) cancelled_ = true;
}

void JobExecutor::OnProgress(const StepProgress& p) {
  Touch();
  WorkerMessage m;
  auto* g = m.mutable_progress();
  g->set_job_id(job_.job_id);
  g->set_attempt(attempt_);
  g->set_chunk(p.chunk);
  g->set_chunks_total(job_.chunks_total());
  g->set_step(p.step);
  g->set_total_steps(p.total_steps);
  g->set_eta_seconds(p.eta_seconds);
  g->set_step_seconds(p.step_seconds);
  if (!send_(m)) cancelled_ = true;
}

}  // namespace magi
