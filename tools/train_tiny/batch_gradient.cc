#include "tools/train_tiny/batch_gradient.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace magi {

AtenThreads::AtenThreads(int n) : saved_(at::get_num_threads()) { at::set_num_threads(n); }

AtenThreads::~AtenThreads() { at::set_num_threads(saved_); }

absl::StatusOr<double> MeanGradient(const std::vector<at::Tensor>& trainable, int n, int workers, const char* what,
                                    const std::function<absl::StatusOr<at::Tensor>(int sample)>& sample_loss) {
  if (n < 1 || workers < 1) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": a batch needs n >= 1 and workers >= 1, got ", n, " and ",
                                                   workers));
  }
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
  const int w_count = std::min(workers, n);
  std::vector<std::thread> threads;
  for (int w = 1; w < w_count; ++w) {
    threads.emplace_back([&, w] {
      for (int i = w; i < n; i += w_count) run(i);
    });
  }
  for (int i = 0; i < n; i += w_count) run(i);
  for (std::thread& t : threads) t.join();
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
    // mutable_grad() on a const handle: the tensor's impl is shared with the caller's.
    at::Tensor t = trainable[k];
    t.mutable_grad() = sum.defined() ? sum / n : at::Tensor();
  }
  return loss_sum / n;
}

}  // namespace magi
