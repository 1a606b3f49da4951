#include "worker/main/rank_group_runner.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "parallel/communicator.h"

namespace magi {
namespace {

// Header broadcast before every job: [payload bytes (-1 = stop), start_chunk]; the payload
// is the job's JobSpec.
constexpr int64_t kStop = -1;

// One slot's follower loop (RunGroupFollower).
absl::Status RunSlotFollower(JobRunner& runner, Communicator& world, int slot);

// The agreement: every rank asks the same question at the same point of the same loop (each
// cancellation check, and once when its job ends). An all-reduce of [cancel, failed by rank
// 0..n-1]: the leader's sink answers "cancel"; a rank whose job failed says so in its own slot
// (at the job's end -- the next agreement the others reach). A failure ends the job on every
// rank at that agreement, and the lowest failed rank broadcasts its error text so the leader
// reports it (no waiting for a heartbeat timeout).
class AgreedCancelSink : public FrameSink {
 public:
  AgreedCancelSink(FrameSink* leader_sink, Communicator& world) : sink_(leader_sink), world_(world) {}
  absl::Status OnPrefixChunk(int index, const std::vector<RgbFrame>& frames) override {
    return sink_ ? sink_->OnPrefixChunk(index, frames) : absl::OkStatus();
  }
  absl::Status OnChunk(int index, const std::vector<RgbFrame>& frames) override {
    return sink_ ? sink_->OnChunk(index, frames) : absl::OkStatus();
  }
  void OnProgress(const StepProgress& p) override {
    if (sink_) sink_->OnProgress(p);
  }
  // Every rank asks at the same point: the leader's live prompt (if any) goes to all.
  absl::StatusOr<std::optional<LivePrompt>> TakeLivePrompt(int chunk) override {
    std::optional<LivePrompt> mine;
    if (sink_ != nullptr) {
      absl::StatusOr<std::optional<LivePrompt>> got = sink_->TakeLivePrompt(chunk);
      if (got.ok()) mine = std::move(*got);  // a leader-side error: no update this time
    }
    at::Tensor head = at::tensor({static_cast<int64_t>(mine.has_value()), mine ? mine->update_id : 0,
                                  mine ? static_cast<int64_t>(mine->text.size()) : 0},
                                 at::kLong);
    MAGI_RETURN_IF_ERROR(world_.Broadcast(head, 0, "group.prompt_header"));
    if (head[0].item<int64_t>() == 0) return std::optional<LivePrompt>();
    const int64_t len = head[2].item<int64_t>();
    at::Tensor bytes = at::zeros({std::max<int64_t>(1, len)}, at::kByte);
    if (mine) std::memcpy(bytes.data_ptr(), mine->text.data(), mine->text.size());
    MAGI_RETURN_IF_ERROR(world_.Broadcast(bytes, 0, "group.prompt"));
    LivePrompt p;
    p.update_id = head[1].item<int64_t>();
    p.text.assign(static_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(len));
    return std::optional<LivePrompt>(std::move(p));
  }
  void OnLivePromptApplied(const LivePrompt& prompt, int chunk) override {
    if (sink_) sink_->OnLivePromptApplied(prompt, chunk);
  }
  bool Cancelled() const override {
    if (!group_error_.ok()) return true;  // a rank failed at an earlier agreement
    return Agree(sink_ != nullptr && sink_->Cancelled(), absl::OkStatus());
  }
  // After this rank's job returned `local`: the last agreement of the job, unless a failure
  // already ended it. Returns the group's outcome: a failed rank's error (the lowest rank's),
  // else `local`.
  absl::Status Finish(const absl::Status& local) {
    if (group_error_.ok()) Agree(false, local);
    if (group_error_.ok() || failed_rank_ == world_.rank()) return local;  // its own error as it was
    return group_error_;
  }

 private:
  // One agreement; true when the job ends here (cancel or a failure).
  bool Agree(bool cancel, const absl::Status& local) const {
    const int n = world_.size();
    at::Tensor flags = at::zeros({1 + n}, at::kFloat);
    flags[0] = cancel ? 1.0f : 0.0f;
    if (!local.ok() && !absl::IsCancelled(local)) flags[1 + world_.rank()] = 1.0f;
    if (auto s = world_.AllReduceSum(flags, "group.agree"); !s.ok()) {
      group_error_ = s;  // the group is gone: stop
      return true;
    }
    int failed = -1;
    for (int r = 0; r < n && failed < 0; ++r) {
      if (flags[1 + r].item<float>() > 0) failed = r;
    }
    if (failed < 0) return flags[0].item<float>() > 0;
    // The failed rank's error: [code, message length], then the message bytes.
    const std::string text = failed == world_.rank() ? std::string(local.message()) : std::string();
    at::Tensor head = at::tensor({static_cast<int64_t>(local.code()), static_cast<int64_t>(text.size())}, at::kLong);
    absl::Status s = world_.Broadcast(head, failed, "group.error_header");
    const int64_t len = s.ok() ? head[1].item<int64_t>() : 0;
    at::Tensor bytes = at::zeros({std::max<int64_t>(1, len)}, at::kByte);
    if (s.ok() && failed == world_.rank()) std::memcpy(bytes.data_ptr(), text.data(), text.size());
    if (s.ok()) s = world_.Broadcast(bytes, failed, "group.error");
    failed_rank_ = failed;
    if (!s.ok()) {
      group_error_ = absl::InternalError(absl::StrCat("worker group: rank ", failed, " failed (its message was lost: ",
                                                      s.message(), ")"));
    } else {
      auto code = static_cast<absl::StatusCode>(head[0].item<int64_t>());
      if (code == absl::StatusCode::kOk) code = absl::StatusCode::kInternal;
      group_error_ = absl::Status(code, absl::StrCat("worker group: rank ", failed, " failed: ",
                                                     std::string(static_cast<const char*>(bytes.data_ptr()), len)));
    }
    return true;
  }

  FrameSink* sink_;  // null on followers
  Communicator& world_;
  mutable absl::Status group_error_;  // set once an agreement saw a failure
  mutable int failed_rank_ = -1;
};

}  // namespace

GroupLeaderRunner::GroupLeaderRunner(std::unique_ptr<JobRunner> inner, Communicator& world)
    : GroupLeaderRunner(std::move(inner), std::vector<Communicator*>{&world}) {}

GroupLeaderRunner::GroupLeaderRunner(std::unique_ptr<JobRunner> inner, std::vector<Communicator*> channels)
    : inner_(std::move(inner)), channels_(std::move(channels)), busy_(channels_.size(), false) {}

GroupLeaderRunner::~GroupLeaderRunner() { (void)StopFollowers(); }

absl::Status GroupLeaderRunner::Run(const RunnerJob& given, FrameSink& sink) {
  int slot = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < busy_.size() && slot < 0; ++i) {
      if (!busy_[i]) slot = static_cast<int>(i);
    }
    if (slot < 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("worker group: all ", busy_.size(), " job slots are busy (--max_jobs_per_group)"));
    }
    busy_[static_cast<size_t>(slot)] = true;
  }
  struct Release {
    GroupLeaderRunner* r;
    int slot;
    ~Release() {
      std::lock_guard<std::mutex> lock(r->mu_);
      r->busy_[static_cast<size_t>(slot)] = false;
    }
  } release{this, slot};
  RunnerJob job = given;
  job.slot = slot;
  Communicator& world = *channels_[static_cast<size_t>(slot)];
  std::string payload;
  if (!job.spec.SerializeToString(&payload)) return absl::InternalError("worker group: cannot serialise the job");
  at::Tensor header = at::tensor({static_cast<int64_t>(payload.size()), static_cast<int64_t>(job.start_chunk)}, at::kLong);
  MAGI_RETURN_IF_ERROR(world.Broadcast(header, 0, "group.job_header"));
  at::Tensor bytes = at::empty({static_cast<int64_t>(payload.size())}, at::kByte);
  std::memcpy(bytes.data_ptr(), payload.data(), payload.size());
  if (!payload.empty()) {
    MAGI_RETURN_IF_ERROR(world.Broadcast(bytes, 0, "group.job"));
  }
  AgreedCancelSink agreed(&sink, world);
  const absl::Status local = inner_->Run(job, agreed);
  return agreed.Finish(local);
}

absl::Status GroupLeaderRunner::StopFollowers() {
  absl::Status first;
  for (Communicator* c : channels_) {
    at::Tensor header = at::tensor({kStop, int64_t{0}}, at::kLong);
    first.Update(c->Broadcast(header, 0, "group.job_header"));
  }
  return first;
}

absl::Status RunGroupFollower(JobRunner& runner, const std::vector<Communicator*>& channels) {
  std::vector<absl::Status> results(channels.size());
  std::vector<std::thread> loops;
  for (size_t i = 1; i < channels.size(); ++i) {
    loops.emplace_back([&, i] { results[i] = RunSlotFollower(runner, *channels[i], static_cast<int>(i)); });
  }
  if (!channels.empty()) results[0] = RunSlotFollower(runner, *channels[0], 0);
  for (auto& t : loops) t.join();
  absl::Status first;
  for (const auto& s : results) first.Update(s);
  return first;
}

absl::Status RunGroupFollower(JobRunner& runner, Communicator& world) { return RunSlotFollower(runner, world, 0); }

namespace {

absl::Status RunSlotFollower(JobRunner& runner, Communicator& world, int slot) {
  for (;;) {
    at::Tensor header = at::zeros({2}, at::kLong);
    MAGI_RETURN_IF_ERROR(world.Broadcast(header, 0, "group.job_header"));
    const int64_t n = header[0].item<int64_t>();
    if (n == kStop) return absl::OkStatus();
    at::Tensor bytes = at::empty({n}, at::kByte);
    if (n > 0) {
      MAGI_RETURN_IF_ERROR(world.Broadcast(bytes, 0, "group.job"));
    }
    RunnerJob job;
    job.job_id = "group";
    if (!job.spec.ParseFromArray(bytes.data_ptr(), static_cast<int>(n))) {
      return absl::DataLossError("worker group: the job from rank 0 does not parse");
    }
    job.start_chunk = static_cast<int>(header[1].item<int64_t>());
    job.slot = slot;
    AgreedCancelSink agreed(nullptr, world);
    // The leader reports the job's outcome (a follower's own failure reaches it through the
    // agreement); a follower logs its own and stays in step.
    const absl::Status local = runner.Run(job, agreed);
    if (!local.ok() && !absl::IsCancelled(local)) {
      std::fprintf(stderr, "magi-worker rank %d: job failed: %s\n", world.rank(), local.ToString().c_str());
    }
    (void)agreed.Finish(local);
  }
}

}  // namespace

}  // namespace magi
