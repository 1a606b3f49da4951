#include "parallel/communicator.h"

#include <ATen/ATen.h>

namespace magi {

void CommStats::Add(const std::string& op, int64_t bytes) {
  Entry& e = by_op[op];
  ++e.calls;
  e.wire_bytes += bytes;
}

int64_t CommStats::TotalBytes() const {
  int64_t n = 0;
  for (const auto& [_, e] : by_op) n += e.wire_bytes;
  return n;
}

namespace {

class SingleRankCommunicator : public Communicator {
 public:
  explicit SingleRankCommunicator(std::string name) : name_(std::move(name)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }
  absl::Status AllReduceSum(at::Tensor&, const std::string& label) override {
    stats_.Add(label, 0);
    return absl::OkStatus();
  }
  absl::Status AllGather(const at::Tensor& input, const std::vector<int64_t>&, at::Tensor* output,
                         const std::string& label) override {
    *output = input;
    stats_.Add(label, 0);
    return absl::OkStatus();
  }
  absl::Status AllToAll(const at::Tensor& input, const std::vector<int64_t>&, const std::vector<int64_t>&,
                        at::Tensor* output, const std::string& label) override {
    *output = input;
    stats_.Add(label, 0);
    return absl::OkStatus();
  }
  absl::Status Broadcast(at::Tensor&, int, const std::string& label) override {
    stats_.Add(label, 0);
    return absl::OkStatus();
  }
  absl::Status Barrier() override { return absl::OkStatus(); }

 private:
  std::string name_;
};

}  // namespace

std::unique_ptr<Communicator> MakeSingleRankCommunicator(const std::string& name) {
  return std::make_unique<SingleRankCommunicator>(name);
}

}  // namespace magi
