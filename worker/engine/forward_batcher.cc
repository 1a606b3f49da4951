#include "worker/engine/forward_batcher.h"

#include <algorithm>
#include <exception>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

namespace magi {

struct ForwardBatcher::Pending {
  const DitForwardArgs* args = nullptr;
  std::chrono::steady_clock::time_point since;
  bool done = false;
  absl::StatusOr<at::Tensor> result = absl::UnknownError("not run");
};

class ForwardBatcher::Member final : public Denoiser {
 public:
  explicit Member(ForwardBatcher& batcher) : batcher_(batcher) {}
  ~Member() override { batcher_.Leave(); }
  absl::StatusOr<at::Tensor> Forward(const DitForwardArgs& args) override { return batcher_.Submit(args); }
  c10::Device device() const override { return batcher_.model_.options().device; }
  int kv_cache_groups(const ModelConfig&) const override { return batcher_.model_.kv_cache_groups(); }

 private:
  ForwardBatcher& batcher_;
};

namespace {

// Calls that can share a forward: N = 1 and the same window shape.
bool Compatible(const DitForwardArgs& a, const DitForwardArgs& b) {
  return a.x.size(0) == 1 && b.x.size(0) == 1 && a.x.sizes() == b.x.sizes() &&
         a.denoising_range_num == b.denoising_range_num && a.x.device() == b.x.device();
}

bool Shaped(const DitForwardArgs& a) { return a.x.defined() && a.x.dim() == 5; }

}  // namespace

ForwardBatcher::ForwardBatcher(const DitModel& model, const ForwardBatcherOptions& options)
    : model_(model), options_(options) {}

ForwardBatcher::~ForwardBatcher() = default;

std::unique_ptr<Denoiser> ForwardBatcher::Join() {
  std::lock_guard<std::mutex> lock(mu_);
  ++members_;
  return std::make_unique<Member>(*this);
}

ForwardBatcherStats ForwardBatcher::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void ForwardBatcher::Leave() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --members_;
  }
  // The waiting calls may now be all there is to wait for.
  cv_.notify_all();
}

absl::StatusOr<at::Tensor> ForwardBatcher::Submit(const DitForwardArgs& args) {
  Pending p;
  p.args = &args;
  p.since = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  waiting_.push_back(&p);
  cv_.notify_all();
  while (!p.done) {
    if (!running_ && !waiting_.empty()) {
      const auto deadline = waiting_.front()->since + options_.straggler_wait;
      if (static_cast<int>(waiting_.size()) >= members_ || std::chrono::steady_clock::now() >= deadline) {
        RunWaiting(lock);
        continue;
      }
      cv_.wait_until(lock, deadline);
      continue;
    }
    cv_.wait(lock);
  }
  return std::move(p.result);
}

void ForwardBatcher::RunWaiting(std::unique_lock<std::mutex>& lock) {
  running_ = true;
  std::vector<Pending*> calls(waiting_.begin(), waiting_.end());
  waiting_.clear();
  lock.unlock();
  // Groups of compatible calls, each in the order its first call came.
  std::vector<std::vector<Pending*>> groups;
  for (Pending* p : calls) {
    bool placed = false;
    for (auto& g : groups) {
      if (static_cast<int>(g.size()) < std::max(1, options_.max_batch) && Shaped(*p->args) &&
          Shaped(*g.front()->args) && Compatible(*g.front()->args, *p->args)) {
        g.push_back(p);
        placed = true;
        break;
      }
    }
    if (!placed) groups.push_back({p});
  }
  int64_t forwards = 0;
  int widest = 0;
  for (auto& g : groups) {
    widest = std::max(widest, static_cast<int>(g.size()));
    if (g.size() > 1) {
      std::vector<const DitForwardArgs*> args;
      for (Pending* p : g) args.push_back(p->args);
      auto outs = model_.ForwardBatch(args);
      ++forwards;
      if (outs.ok()) {
        for (size_t i = 0; i < g.size(); ++i) g[i]->result = std::move((*outs)[i]);
        continue;
      }
      // One bad call must not fail the others: run them alone, each with its own outcome.
    }
    for (Pending* p : g) {
      p->result = model_.Forward(*p->args);
      ++forwards;
    }
  }
  lock.lock();
  for (Pending* p : calls) p->done = true;
  stats_.calls += static_cast<int64_t>(calls.size());
  stats_.forwards += forwards;
  stats_.max_batch = std::max(stats_.max_batch, widest);
  running_ = false;
  cv_.notify_all();
}

}  // namespace magi
