#include "worker/main/worker_link.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "base/worker_token.h"
#include "magi/internal/v1/worker_pool.grpc.pb.h"
#include "worker/main/job_executor.h"
#include "worker/main/worker_health.h"
#include "worker/runner/job_runner.h"

namespace magi {

using ::magi::internal::v1::ServerMessage;
using ::magi::internal::v1::WorkerMessage;

WorkerLink::WorkerLink(WorkerLinkOptions options, JobRunner* runner)
    : options_(std::move(options)), runner_(runner) {}

WorkerLink::~WorkerLink() { Stop(); }

void WorkerLink::Stop() {
  stop_ = true;
  std::lock_guard<std::mutex> lock(ctx_mu_);
  if (ctx_) ctx_->TryCancel();
}

void WorkerLink::Drain(absl::Duration grace) {
  draining_ = true;
  if (options_.health) options_.health->SetDraining();
  const absl::Time deadline = absl::Now() + grace;
  bool logged = false;
  while (absl::Now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(exec_mu_);
      bool any = false;
      for (JobExecutor* ex : current_) {
        if (!ex->running()) continue;
        any = true;
        ex->HandBackAfterChunk();
        if (!logged) {
          std::fprintf(stderr, "magi-worker: draining: job %s stops after its current chunk (up to %s)\n",
                       ex->job_id().c_str(), absl::FormatDuration(grace).c_str());
        }
      }
      logged = logged || any;
      if (!any) break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::fprintf(stderr, "magi-worker: draining: leaving the server, which re-queues any unfinished job\n");
  // Leave gracefully: half-close so the server reads everything sent (the job's hand-back
  // above all) before the stream ends; cancel only if it does not end within a few seconds.
  stop_ = true;
  bool half_closed = false;
  {
    std::lock_guard<std::mutex> lock(ctx_mu_);
    if (half_close_) {
      half_close_();
      half_closed = true;
    }
  }
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (half_closed && absl::Now() < until) {
    {
      std::lock_guard<std::mutex> lock(ctx_mu_);
      if (ctx_ == nullptr) break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  Stop();
}

absl::Status WorkerLink::Refused(const grpc::Status& s) const {
  std::fprintf(stderr, "magi-worker: %s refused the worker token of %s: %s\n", options_.server.c_str(),
               options_.token_file.c_str(), s.error_message().c_str());
  return absl::UnauthenticatedError(s.error_message());
}

absl::Status WorkerLink::Run() {
  if (options_.token_file.empty()) {
    return absl::InvalidArgumentError("--worker_token_file: required (the file with the server's worker token)");
  }
  absl::Duration backoff = absl::Milliseconds(100);
  absl::Status last;
  while (!stop_) {
    int before = sessions_.load();
    last = RunSession();
    if (stalled_) return absl::FailedPreconditionError(absl::StrCat("stalled: ", stall_reason_));
    if (!options_.reconnect || stop_) break;
    if (sessions_.load() > before) backoff = absl::Milliseconds(100);  // it had connected
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  return last;
}

absl::Status WorkerLink::RunSession() {
  auto tokens = ReadWorkerTokenFile(options_.token_file);
  if (!tokens.ok()) {
    std::fprintf(stderr, "magi-worker: %s\n", std::string(tokens.status().message()).c_str());
    return tokens.status();
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  auto channel = grpc::CreateCustomChannel(options_.server, grpc::InsecureChannelCredentials(), args);
  auto stub = ::magi::internal::v1::WorkerPool::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata(kWorkerTokenMetadataKey, kWorkerTokenScheme + tokens->front());
  {
    std::lock_guard<std::mutex> lock(ctx_mu_);
    if (stop_) return absl::CancelledError("stopped");
    ctx_ = &ctx;
  }
  auto stream = stub->Connect(&ctx);
  std::mutex write_mu;
  std::atomic<bool> broken{false};
  auto send = [&](const WorkerMessage& m) -> bool {
    if (options_.health && m.has_progress()) options_.health->ObserveStep(m.progress().step_seconds());
    std::lock_guard<std::mutex> lock(write_mu);
    if (broken) return false;
    if (!stream->Write(m)) {
      broken = true;
      return false;
    }
    return true;
  };

  WorkerMessage reg;
  auto* r = reg.mutable_register_();
  r->set_group_id(options_.group_id);
  for (const auto& m : runner_->Models()) *r->add_models() = m;
  r->set_memory_bytes(options_.memory_bytes);
  r->set_world_size(options_.world_size);
  const int slots = std::max(1, runner_->max_concurrent_jobs());
  r->set_slots(slots);
  r->set_runner(runner_->name());
  if (!send(reg)) {
    std::lock_guard<std::mutex> lock(ctx_mu_);
    ctx_ = nullptr;
    grpc::Status s = stream->Finish();
    if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED) return Refused(s);
    return absl::UnavailableError(absl::StrCat("cannot reach ", options_.server, ": ", s.error_message()));
  }
  bool writes_done = false;  // under write_mu
  auto half_close = [&] {
    std::lock_guard<std::mutex> lock(write_mu);
    if (writes_done) return;
    writes_done = true;
    broken = true;  // nothing more is written after WritesDone
    stream->WritesDone();
  };
  {
    std::lock_guard<std::mutex> lock(ctx_mu_);
    half_close_ = half_close;
  }

  // Heartbeats and the job threads share this state.
  std::mutex mu;
  std::condition_variable cv;
  bool session_over = false;
  int heartbeat_ms = 1000;
  struct Slot {
    std::unique_ptr<JobExecutor> executor;
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
  };
  std::vector<Slot> jobs;  // under mu; in start order
  auto find = [&](const std::string& job_id, int attempt) -> JobExecutor* {
    for (auto& s : jobs) {
      if (s.executor->job_id() == job_id && s.executor->attempt() == attempt) return s.executor.get();
    }
    return nullptr;
  };
  std::thread heartbeat([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!session_over) {
      cv.wait_for(lock, std::chrono::milliseconds(heartbeat_ms));
      if (session_over) break;
      WorkerMessage hb;
      hb.mutable_heartbeat()->set_unix_ms(absl::ToUnixMillis(absl::Now()));
      JobExecutor* wedged = nullptr;
      for (auto& s : jobs) {
        if (s.done->load()) continue;
        hb.mutable_heartbeat()->add_running_job_ids(s.executor->job_id());
        if (s.executor->running() && absl::Now() - s.executor->last_progress() > options_.step_timeout) {
          wedged = s.executor.get();
        }
      }
      if (wedged != nullptr && options_.step_timeout > absl::ZeroDuration() && !stalled_) {
        stall_reason_ = absl::StrCat("job ", wedged->job_id(), " made no progress for ",
                                     absl::FormatDuration(absl::Now() - wedged->last_progress()),
                                     " (--step_timeout_seconds ", absl::ToInt64Seconds(options_.step_timeout),
                                     "); a collective or the device is wedged");
        stalled_ = true;
        std::fprintf(stderr, "magi-worker: stalled: %s; ending the stream so the server re-queues it\n",
                     stall_reason_.c_str());
        if (options_.health) options_.health->SetStalled(stall_reason_);
        lock.unlock();
        if (options_.on_stall) options_.on_stall(stall_reason_);
        {
          std::lock_guard<std::mutex> ctx_lock(ctx_mu_);
          if (ctx_) ctx_->TryCancel();
        }
        lock.lock();
        continue;
      }
      lock.unlock();
      send(hb);
      lock.lock();
    }
  });

  ServerMessage in;
  while (stream->Read(&in)) {
    switch (in.msg_case()) {
      case ServerMessage::kRegistered: {
        std::lock_guard<std::mutex> lock(mu);
        if (in.registered().heartbeat_interval_ms() > 0) heartbeat_ms = in.registered().heartbeat_interval_ms();
        sessions_++;
        if (options_.health) options_.health->SetRegistered(true);
        std::fprintf(stderr, "magi-worker: registered as %s\n", in.registered().group_id().c_str());
        break;
      }
      case ServerMessage::kAssign: {
        // Finished jobs free their slots. The server assigns only into a free slot (it frees one
        // at JobDone, sent as the job's last act), so when all are taken the oldest is ending.
        std::vector<Slot> finished;
        {
          std::lock_guard<std::mutex> exec_lock(exec_mu_);
          std::lock_guard<std::mutex> lock(mu);
          for (size_t i = 0; i < jobs.size();) {
            if (jobs[i].done->load() || (i == 0 && static_cast<int>(jobs.size()) >= slots)) {
              current_.erase(std::remove(current_.begin(), current_.end(), jobs[i].executor.get()), current_.end());
              finished.push_back(std::move(jobs[i]));
              jobs.erase(jobs.begin() + static_cast<std::ptrdiff_t>(i));
            } else {
              ++i;
            }
          }
        }
        for (auto& s : finished) s.thread.join();
        std::lock_guard<std::mutex> exec_lock(exec_mu_);
        if (draining_) {
          std::fprintf(stderr, "magi-worker: draining: not starting job %s\n", in.assign().job_id().c_str());
          break;
        }
        std::lock_guard<std::mutex> lock(mu);
        std::fprintf(stderr, "magi-worker: job %s attempt %d starts at chunk %d\n", in.assign().job_id().c_str(),
                     static_cast<int>(in.assign().attempt()), static_cast<int>(in.assign().start_chunk()));
        Slot s;
        s.executor = std::make_unique<JobExecutor>(*runner_, in.assign(), send);
        current_.push_back(s.executor.get());
        s.thread = std::thread([ex = s.executor.get(), done = s.done] {
          ex->Run().IgnoreError();
          *done = true;
        });
        jobs.push_back(std::move(s));
        break;
      }
      case ServerMessage::kCancel: {
        std::lock_guard<std::mutex> lock(mu);
        if (JobExecutor* ex = find(in.cancel().job_id(), in.cancel().attempt())) ex->Cancel();
        break;
      }
      case ServerMessage::kPromptUpdate: {
        const auto& u = in.prompt_update();
        std::lock_guard<std::mutex> lock(mu);
        if (JobExecutor* ex = find(u.job_id(), u.attempt())) ex->OfferPrompt(LivePrompt{u.update_id(), u.text()});
        break;
      }
      case ServerMessage::MSG_NOT_SET:
        break;
    }
  }
  if (options_.health) options_.health->SetRegistered(false);
  {
    std::lock_guard<std::mutex> exec_lock(exec_mu_);
    current_.clear();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    session_over = true;
    broken = true;
    for (auto& s : jobs) s.executor->Cancel();
  }
  cv.notify_all();
  heartbeat.join();
  for (auto& s : jobs) {
    if (stalled_ && !s.done->load()) {
      // A wedged job never returns: abandon its thread and keep what it uses alive.
      s.thread.detach();
      s.executor.release();
    } else {
      s.thread.join();
    }
  }
  jobs.clear();
  half_close();
  grpc::Status s = stream->Finish();
  {
    std::lock_guard<std::mutex> lock(ctx_mu_);
    ctx_ = nullptr;
    half_close_ = nullptr;  // it refers to this session's stream
  }
  if (s.ok()) return absl::OkStatus();
  if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED) return Refused(s);
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace magi
