#include "worker/main/rank_group_runner.h"

#include <cstring>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "parallel/communicator.h"

namespace magi {
namespace {

// Header broadcast before every job: [payload bytes (-1 = stop), start_chunk]; the payload
// is the job's JobSpec.
constexpr int64_t kStop = -1;

// Every rank asks the same question at the same point of the same loop; the leader's sink
// answers, everyone adopts it.
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
  bool Cancelled() const override {
    at::Tensor flag = at::full({1}, sink_ != nullptr && sink_->Cancelled() ? 1.0f : 0.0f);
    if (!world_.AllReduceSum(flag, "group.cancel").ok()) return true;  // the group is gone: stop
    return flag.item<float>() > 0;
  }

 private:
  FrameSink* sink_;  // null on followers
  Communicator& world_;
};

}  // namespace

GroupLeaderRunner::GroupLeaderRunner(std::unique_ptr<JobRunner> inner, Communicator& world)
    : inner_(std::move(inner)), world_(world) {}

GroupLeaderRunner::~GroupLeaderRunner() { (void)StopFollowers(); }

absl::Status GroupLeaderRunner::Run(const RunnerJob& job, FrameSink& sink) {
  std::string payload;
  if (!job.spec.SerializeToString(&payload)) return absl::InternalError("worker group: cannot serialise the job");
  at::Tensor header = at::tensor({static_cast<int64_t>(payload.size()), static_cast<int64_t>(job.start_chunk)}, at::kLong);
  if (auto s = world_.Broadcast(header, 0, "group.job_header"); !s.ok()) return s;
  at::Tensor bytes = at::empty({static_cast<int64_t>(payload.size())}, at::kByte);
  std::memcpy(bytes.data_ptr(), payload.data(), payload.size());
  if (!payload.empty()) {
    if (auto s = world_.Broadcast(bytes, 0, "group.job"); !s.ok()) return s;
  }
  AgreedCancelSink agreed(&sink, world_);
  return inner_->Run(job, agreed);
}

absl::Status GroupLeaderRunner::StopFollowers() {
  at::Tensor header = at::tensor({kStop, int64_t{0}}, at::kLong);
  return world_.Broadcast(header, 0, "group.job_header");
}

absl::Status RunGroupFollower(JobRunner& runner, Communicator& world) {
  for (;;) {
    at::Tensor header = at::zeros({2}, at::kLong);
    if (auto s = world.Broadcast(header, 0, "group.job_header"); !s.ok()) return s;
    const int64_t n = header[0].item<int64_t>();
    if (n == kStop) return absl::OkStatus();
    at::Tensor bytes = at::empty({n}, at::kByte);
    if (n > 0) {
      if (auto s = world.Broadcast(bytes, 0, "group.job"); !s.ok()) return s;
    }
    RunnerJob job;
    job.job_id = "group";
    if (!job.spec.ParseFromArray(bytes.data_ptr(), static_cast<int>(n))) {
      return absl::DataLossError("worker group: the job from rank 0 does not parse");
    }
    job.start_chunk = static_cast<int>(header[1].item<int64_t>());
    AgreedCancelSink agreed(nullptr, world);
    // The leader reports the job's outcome; a follower only has to stay in step.
    (void)runner.Run(job, agreed);
  }
}

}  // namespace magi
