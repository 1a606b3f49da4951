#include "worker/engine/forward_batcher.h"

#include <algorithm>
#include <exception>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "parallel/communicator.h"

namespace magi {

struct ForwardBatcher::Pending {
  int slot = 0;
  const DitForwardArgs* args = nullptr;
  std::chrono::steady_clock::time_point since;
  bool done = false;
  absl::StatusOr<at::Tensor> result = absl::UnknownError("not run");
};

class ForwardBatcher::Member final : public Denoiser {
 public:
  Member(ForwardBatcher& batcher, int slot) : batcher_(batcher), slot_(slot) {}
  ~Member() override { batcher_.Leave(); }
  absl::StatusOr<at::Tensor> Forward(const DitForwardArgs& args) override { return batcher_.Submit(slot_, args); }
  c10::Device device() const override { return batcher_.model_.options().device; }
  int kv_cache_groups(const ModelConfig&) const override { return batcher_.model_.kv_cache_groups(); }

 private:
  ForwardBatcher& batcher_;
  const int slot_;
};

namespace {

// The most members one announced forward can name (the slots a group can have).
constexpr int64_t kMaxAnnounced = 64;

class CommForwardOrder final : public ForwardOrder {
 public:
  explicit CommForwardOrder(Communicator& comm) : comm_(comm) {}
  bool decides() const override { return comm_.rank() == 0; }
  absl::Status Exchange(std::vector<int>* slots) override {
    // [count, slot...]: one broadcast of a fixed size.
    at::Tensor msg = at::zeros({1 + kMaxAnnounced}, at::kLong);
    if (decides()) {
      if (slots->empty() || static_cast<int64_t>(slots->size()) > kMaxAnnounced) {
        return absl::InvalidArgumentError(absl::StrCat("forward order: a forward of ", slots->size(),
                                                       " calls; allowed [1, ", kMaxAnnounced, "]"));
      }
      msg[0] = static_cast<int64_t>(slots->size());
      for (size_t i = 0; i < slots->size(); ++i) msg[1 + static_cast<int64_t>(i)] = (*slots)[i];
    }
    if (absl::Status s = comm_.Broadcast(msg, 0, "batch.order"); !s.ok()) return s;
    if (decides()) return absl::OkStatus();
    const int64_t n = msg[0].item<int64_t>();
    if (n < 1 || n > kMaxAnnounced) {
      return absl::DataLossError(absl::StrCat("forward order: rank 0 announced ", n, " calls; allowed [1, ",
                                              kMaxAnnounced, "]"));
    }
    slots->clear();
    for (int64_t i = 0; i < n; ++i) slots->push_back(static_cast<int>(msg[1 + i].item<int64_t>()));
    return absl::OkStatus();
  }

 private:
  Communicator& comm_;
};

// Calls that can share a forward: N = 1 and the same window shape.
bool Compatible(const DitForwardArgs& a, const DitForwardArgs& b) {
  return a.x.size(0) == 1 && b.x.size(0) == 1 && a.x.sizes() == b.x.sizes() &&
         a.denoising_range_num == b.denoising_range_num && a.x.device() == b.x.device();
}

bool Shaped(const DitForwardArgs& a) { return a.x.defined() && a.x.dim() == 5; }

}  // namespace

std::unique_ptr<ForwardOrder> MakeForwardOrder(Communicator& comm) {
  return std::make_unique<CommForwardOrder>(comm);
}

ForwardBatcher::ForwardBatcher(const DitModel& model, const ForwardBatcherOptions& options)
    : model_(model), options_(options) {}

ForwardBatcher::~ForwardBatcher() = default;

std::unique_ptr<Denoiser> ForwardBatcher::Join(int slot) {
  std::lock_guard<std::mutex> lock(mu_);
  ++members_;
  return std::make_unique<Member>(*this, slot);
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

absl::StatusOr<at::Tensor> ForwardBatcher::Submit(int slot, const DitForwardArgs& args) {
  Pending p;
  p.slot = slot;
  p.args = &args;
  p.since = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  waiting_.push_back(&p);
  cv_.notify_all();
  const bool follows = options_.order != nullptr && !options_.order->decides();
  while (!p.done) {
    if (!running_ && !waiting_.empty() && follows) {
      RunAnnounced(lock);
      continue;
    }
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
    if (options_.order != nullptr) {
      // Tell the other ranks which calls this forward takes, in order, before running it.
      std::vector<int> slots;
      for (Pending* p : g) slots.push_back(p->slot);
      if (absl::Status s = options_.order->Exchange(&slots); !s.ok()) {
        for (Pending* p : g) p->result = absl::Status(s.code(), absl::StrCat("worker group: ", s.message()));
        continue;
      }
    }
    forwards += RunGroup(g);
  }
  lock.lock();
  Finish(calls, forwards, widest);
}

int64_t ForwardBatcher::RunGroup(const std::vector<Pending*>& g) {
  int64_t forwards = 0;
  if (g.size() > 1) {
    std::vector<const DitForwardArgs*> args;
    for (Pending* p : g) args.push_back(p->args);
    auto outs = model_.ForwardBatch(args);
    ++forwards;
    if (outs.ok()) {
      for (size_t i = 0; i < g.size(); ++i) g[i]->result = std::move((*outs)[i]);
      return forwards;
    }
    // One bad call must not fail the others: run them alone, each with its own outcome. (The
    // checks that fail a batch depend only on the calls, so every rank of a group falls back
    // alike.)
  }
  for (Pending* p : g) {
    p->result = model_.Forward(*p->args);
    ++forwards;
  }
  return forwards;
}

void ForwardBatcher::RunAnnounced(std::unique_lock<std::mutex>& lock) {
  running_ = true;
  lock.unlock();
  std::vector<int> slots;
  const absl::Status got = options_.order->Exchange(&slots);
  lock.lock();
  if (!got.ok()) {
    // The group is gone: every waiting call fails with it.
    std::vector<Pending*> calls(waiting_.begin(), waiting_.end());
    waiting_.clear();
    for (Pending* p : calls) p->result = absl::Status(got.code(), absl::StrCat("worker group: ", got.message()));
    Finish(calls, 0, 0);
    return;
  }
  // The announced slots' calls: each comes (its job makes the same calls as the leader's).
  auto find = [&](int slot) {
    return std::find_if(waiting_.begin(), waiting_.end(), [slot](const Pending* p) { return p->slot == slot; });
  };
  cv_.wait(lock, [&] {
    return std::all_of(slots.begin(), slots.end(), [&](int slot) { return find(slot) != waiting_.end(); });
  });
  std::vector<Pending*> group;
  for (int slot : slots) {
    auto it = find(slot);
    group.push_back(*it);
    waiting_.erase(it);
  }
  lock.unlock();
  const int64_t forwards = RunGroup(group);
  lock.lock();
  Finish(group, forwards, static_cast<int>(group.size()));
}

void ForwardBatcher::Finish(const std::vector<Pending*>& calls, int64_t forwards, int widest) {
  for (Pending* p : calls) p->done = true;
  stats_.calls += static_cast<int64_t>(calls.size());
  stats_.forwards += forwards;
  stats_.max_batch = std::max(stats_.max_batch, widest);
  running_ = false;
  cv_.notify_all();
}

}  // namespace magi
