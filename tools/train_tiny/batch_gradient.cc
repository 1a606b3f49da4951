#include "tools/train_tiny/batch_gradient.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <system_error>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace magi {

BatchGradient::BatchGradient(int workers) : workers_(std::max(1, workers)), saved_threads_(at::get_num_threads()) {
  at::set_num_threads(1);
}

BatchGradient::~BatchGradient() { at::set_num_threads(saved_threads_); }

absl::StatusOr<double> BatchGradient::MeanGradient(
    const std::vector<at::Tensor>& trainable, int n, const char* what,
    const std::function<absl::StatusOr<at::Tensor>(int sample)>& sample_loss, const std::vector<double>& cost) const {
  if (n < 1) return absl::InvalidArgumentError(absl::StrCat(what, ": a batch needs n >= 1 samples, got ", n));
  if (!cost.empty() && cost.size() != static_cast<size_t>(n)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", cost.size(), " sample costs for ", n, " samples"));
  }
  // The order the workers take the samples in: costliest first (ties in sample order).
  std::vector<int> order(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  if (!cost.empty()) {
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return cost[static_cast<size_t>(a)] > cost[static_cast<size_t>(b)]; });
  }
  std::atomic<int> next{0};
  struct Sample {
    absl::Status status;
    double loss = 0;
    std::vector<at::Tensor> grads;
  };
  std::vector<Sample> samples(static_cast<size_t>(n));
  auto run = [&](int i) {
    Sample& s = samples[static_cast<size_t>(i)];
    try {
      absl::StatusOr<at::Tensor> loss = sample_loss(i);
      if (!loss.ok()) {
        s.status = loss.status();
        return;
      }
      s.grads = torch::autograd::grad({*loss}, trainable, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                      /*allow_unused=*/true);
      s.loss = loss->item<double>();
    } catch (const std::exception& e) {
      s.status = absl::InternalError(absl::StrCat(what, " failed: ", e.what()));
    }
  };
  const int workers = std::min(workers_, n);
  const at::ThreadLocalState state;  // grad mode and the rest, as on the calling thread
  std::vector<std::thread> threads;
  absl::Status started;
  try {
    for (int w = 1; w < workers; ++w) {
      threads.emplace_back([&] {
        at::ThreadLocalStateGuard guard(state);
        for (int k; (k = next.fetch_add(1)) < n;) run(order[static_cast<size_t>(k)]);
      });
    }
  } catch (const std::system_error& e) {
    started = absl::ResourceExhaustedError(absl::StrCat(what, ": cannot start a worker thread: ", e.what()));
  }
  if (started.ok()) {
    for (int k; (k = next.fetch_add(1)) < n;) run(order[static_cast<size_t>(k)]);
  }
  for (std::thread& t : threads) t.join();
  if (!started.ok()) return started;
  double loss_sum = 0;
  for (const Sample& s : samples) {
    if (!s.status.ok()) return s.status;
    loss_sum += s.loss;
  }
  at::NoGradGuard no_grad;
  for (size_t k = 0; k < trainable.size(); ++k) {
    at::Tensor sum;
    for (const Sample& s : samples) {
      const at::Tensor& g = s.grads[k];
      if (!g.defined()) continue;
      sum = sum.defined() ? sum + g : g.clone();
    }
    // mutable_grad() on a copy of the handle: the tensor's impl is shared with the caller's.
    at::Tensor t = trainable[k];
    t.mutable_grad() = sum.defined() ? sum / n : at::Tensor();
  }
  return loss_sum / n;
}

}  // namespace magi
