#include "tools/train_tiny/adam.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

namespace magi {

Adam::Adam(std::map<std::string, at::Tensor>& weights, int warmup_steps) : warmup_steps_(std::max(1, warmup_steps)) {
  for (auto& [name, t] : weights) {
    t.set_data(t.detach().clone());
    t.requires_grad_(true);
    p_.push_back(t);
    m_.push_back(at::zeros_like(t.detach()));
    v_.push_back(at::zeros_like(t.detach()));
  }
}

double Adam::Step(double lr) {
  at::NoGradGuard no_grad;
  ++step_;
  double norm2 = 0;
  for (auto& t : p_) {
    if (t.grad().defined()) norm2 += t.grad().pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(norm2);
  const double clip = std::min(1.0, 1.0 / (norm + 1e-12));
  const double rate = lr * std::min(1.0, static_cast<double>(step_) / warmup_steps_);
  const double b1 = 0.9, b2 = 0.999, c1 = 1 - std::pow(b1, step_), c2 = 1 - std::pow(b2, step_);
  for (size_t i = 0; i < p_.size(); ++i) {
    if (!p_[i].grad().defined()) continue;
    at::Tensor g = p_[i].grad() * clip;
    m_[i].mul_(b1).add_(g, 1 - b1);
    v_[i].mul_(b2).addcmul_(g, g, 1 - b2);
    p_[i].sub_((m_[i] / c1) / ((v_[i] / c2).sqrt() + 1e-8) * rate);
  }
  return norm;
}

void Adam::Finish() {
  for (auto& t : p_) {
    t.requires_grad_(false);
    t.mutable_grad() = at::Tensor();
  }
}

double DecayedRate(double lr, int step, int steps) {
  const double progress = steps > 1 ? static_cast<double>(std::clamp(step, 1, steps) - 1) / (steps - 1) : 0.0;
  return lr * (1.0 - 0.9 * progress);
}

int64_t Adam::parameters() const {
  int64_t n = 0;
  for (const auto& t : p_) n += t.numel();
  return n;
}

}  // namespace magi
