// Rank groups in one process for tests: ranks on threads over a fake Communicator. Every
// collective waits (up to 20 s) for all ranks, checks that they all called the same one
// (name and shape; a mismatch is the SPMD bug the group's agreements must rule out, so every
// rank gets an error naming both), then each computes its result from everyone's inputs.
#ifndef MAGI_TESTS_RUNNER_FAKE_GROUP_H_
#define MAGI_TESTS_RUNNER_FAKE_GROUP_H_

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "parallel/communicator.h"

namespace magi {

class FakeHub {
 public:
  explicit FakeHub(int n) : n_(n), in_(n), what_(n) {}
  absl::StatusOr<std::vector<at::Tensor>> Exchange(int rank, const std::string& what, const at::Tensor& t) {
    std::unique_lock<std::mutex> lock(mu_);
    in_[rank] = t.clone();
    what_[rank] = absl::StrCat(what, " [", absl::StrJoin(t.sizes(), ", "), "] ", std::string(t.dtype().name()));
    const int64_t gen = gen_;
    if (++arrived_ == n_) {
      out_ = in_;
      mismatch_.clear();
      for (int r = 1; r < n_; ++r) {
        if (what_[r] != what_[0]) mismatch_ = absl::StrCat("rank 0 called ", what_[0], ", rank ", r, " ", what_[r]);
      }
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
    } else if (!cv_.wait_for(lock, std::chrono::seconds(20), [&] { return gen_ != gen; })) {
      return absl::DeadlineExceededError(absl::StrCat("fake collective ", what, ": a rank never came"));
    }
    if (!mismatch_.empty()) return absl::InternalError(absl::StrCat("fake collective: ranks disagree: ", mismatch_));
    return out_;
  }

 private:
  const int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int64_t gen_ = 0;
  std::vector<at::Tensor> in_, out_;
  std::vector<std::string> what_;
  std::string mismatch_;
};

class FakeComm : public Communicator {
 public:
  FakeComm(FakeHub& hub, int rank, int size) : hub_(hub), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  absl::Status AllReduceSum(at::Tensor& t, const std::string& tag) override {
    auto all = hub_.Exchange(rank_, "all-reduce " + tag, t);
    if (!all.ok()) return all.status();
    at::Tensor sum = at::zeros_like(t);
    for (const auto& x : *all) sum.add_(x);
    t.copy_(sum);
    return absl::OkStatus();
  }
  absl::Status Broadcast(at::Tensor& t, int root, const std::string& tag) override {
    auto all = hub_.Exchange(rank_, absl::StrCat("broadcast from ", root, " ", tag), t);
    if (!all.ok()) return all.status();
    t.copy_((*all)[root]);
    return absl::OkStatus();
  }
  absl::Status AllGather(const at::Tensor&, const std::vector<int64_t>&, at::Tensor*, const std::string&) override {
    return absl::UnimplementedError("fake communicator: no all-gather");
  }
  absl::Status AllToAll(const at::Tensor&, const std::vector<int64_t>&, const std::vector<int64_t>&, at::Tensor*,
                        const std::string&) override {
    return absl::UnimplementedError("fake communicator: no all-to-all");
  }
  absl::Status Barrier() override { return absl::OkStatus(); }

 private:
  FakeHub& hub_;
  int rank_, size_;
  std::string name_ = "world";
};

// n ranks' world communicators.
struct FakeGroup {
  explicit FakeGroup(int n) : hub(n) {
    for (int r = 0; r < n; ++r) comms.push_back(std::make_unique<FakeComm>(hub, r, n));
  }
  FakeHub hub;
  std::vector<std::unique_ptr<FakeComm>> comms;
};

}  // namespace magi

#endif  // MAGI_TESTS_RUNNER_FAKE_GROUP_H_
