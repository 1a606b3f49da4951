// The optimiser both trainers of `magi-train-tiny` use (tools/train_tiny): Adam (b1 0.9,
// b2 0.999, eps 1e-8) over a model's weight handles, with the global gradient norm clipped
// to 1 and a linear warm-up. The weights are turned into trainable private copies first (a
// loaded checkpoint may be a read-only mapping), in place, so the model computes with them.
//
// Thread safety: thread-compatible; one training loop at a time.
#ifndef MAGI_TOOLS_TRAIN_TINY_ADAM_H_
#define MAGI_TOOLS_TRAIN_TINY_ADAM_H_

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace magi {

class Adam {
 public:
  // Makes every tensor of `weights` a trainable private copy (set_data + requires_grad).
  explicit Adam(std::map<std::string, at::Tensor>& weights, int warmup_steps = 20);
  // One step with `lr` (scaled by the warm-up). Returns the gradient norm before clipping.
  double Step(double lr);
  // Stops recording: the weights no longer require gradients and drop theirs.
  void Finish();
  int64_t parameters() const;

 private:
  std::vector<at::Tensor> p_, m_, v_;
  int step_ = 0;
  int warmup_steps_;
};

// The DiT trainer's learning-rate schedule after Adam's warm-up: `lr` decayed linearly from
// step 1 to a tenth of it at step `steps` (1-based). (The VAE keeps a constant rate: with
// this decay its held-out MSE was worse, 0.00625 vs 0.00562, docs/training.md.)
double DecayedRate(double lr, int step, int steps);

}  // namespace magi

#endif  // MAGI_TOOLS_TRAIN_TINY_ADAM_H_
