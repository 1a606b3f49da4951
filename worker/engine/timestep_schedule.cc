#include "worker/engine/timestep_schedule.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

namespace magi {

absl::StatusOr<std::vector<float>> TimestepSchedule(int num_steps, const std::string& shortcut_mode) {
  if (num_steps < 1 || num_steps > 100000) {
    return absl::InvalidArgumentError(absl::StrCat("num_steps must be in [1, 100000], got ", num_steps));
  }
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  at::Tensor g;
  if (num_steps == 12) {
    // Shortcut grid: base offsets within a quarter, added to each quarter start (§2.2).
    at::Tensor base = at::linspace(0, 1, 5, f32) / 4;
    at::Tensor accu = at::linspace(0, 1, 5, f32);
    if (shortcut_mode == "16,16,8") {
      base = base.slice(0, 0, 3);
    } else {
      base = at::cat({base.slice(0, 0, 1), base.slice(0, 2, 4)}, 0);
    }
    std::vector<at::Tensor> parts;
    for (int k = 0; k < 5; ++k) parts.push_back(base + accu[k]);
    g = at::cat(parts, 0).slice(0, 0, num_steps + 1);
  } else {
    g = at::linspace(0, 1, num_steps + 1, f32);
  }
  // sd3 with a reversed time axis, shift 3: s·u / (1 + (s − 1)·u), scalars as Python doubles.
  const double shift_inv = 1.0 / 3.0;
  at::Tensor u = at::pow(g, 2);
  at::Tensor t = at::mul(u, shift_inv) / at::add(at::mul(u, shift_inv - 1.0), 1);
  t = t.contiguous();
  const float* p = t.data_ptr<float>();
  return std::vector<float>(p, p + t.numel());
}

std::vector<int> DistillIntervals(int num_steps, const std::string& shortcut_mode) {
  std::vector<int> out(std::max(num_steps, 0), 1);
  if (num_steps > 0 && num_steps % 3 == 0) {
    const int pattern[3] = {shortcut_mode == "16,16,8" ? 1 : 2, 1, shortcut_mode == "16,16,8" ? 2 : 1};
    for (int i = 0; i < num_steps; ++i) out[i] = pattern[i % 3];
  }
  return out;
}

}  // namespace magi
