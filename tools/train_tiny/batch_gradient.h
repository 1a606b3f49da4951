// The data-parallel step both trainers of `magi-train-tiny` use (tools/train_tiny): a batch's
// samples computed several at once, each on its own thread, with weights that do not depend
// on how many threads there were.
//
// Each sample's loss gets its own gradient (torch::autograd::grad, nothing accumulated into
// .grad while the workers run), and the batch's gradient is their sum in sample order divided
// by the batch size: the gradient of the mean of the samples' losses. Every sample is computed
// with one ATen thread whatever the worker count, so the bits do not depend on it either (the
// tiny models' ops are too small for intra-op threads to help: measured, docs/training.md).
// Random draws belong before the call, in sample order, on the caller's thread.
//
// Thread safety: one MeanGradient call at a time; `sample_loss` runs concurrently on the
// workers, for distinct samples, each with the caller's thread-local state (grad mode...).
#ifndef MAGI_TOOLS_TRAIN_TINY_BATCH_GRADIENT_H_
#define MAGI_TOOLS_TRAIN_TINY_BATCH_GRADIENT_H_

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

#include "absl/status/statusor.h"

namespace magi {

class BatchGradient {
 public:
  // For its lifetime ATen computes with one intra-op thread (the caller's count is restored
  // after); `workers` (>= 1) threads compute a batch's samples.
  explicit BatchGradient(int workers);
  ~BatchGradient();
  BatchGradient(const BatchGradient&) = delete;
  BatchGradient& operator=(const BatchGradient&) = delete;

  // Sets every tensor of `trainable` (leaves that require grad) to the gradient of the mean
  // of sample_loss(0) .. sample_loss(n - 1) -- each a scalar -- replacing what .grad held.
  // Each worker (worker 0 is the calling thread) takes the next sample not yet taken when it
  // is free; with `cost` (n estimates, e.g. a sample's tokens) the costliest are taken first,
  // so that samples of unequal size keep both workers busy. Neither changes the result. A
  // weight no sample reaches gets an undefined .grad. Returns that mean loss, or the first
  // failing sample's status (an exception from ATen becomes an Internal error naming `what`).
  absl::StatusOr<double> MeanGradient(const std::vector<at::Tensor>& trainable, int n, const char* what,
                                      const std::function<absl::StatusOr<at::Tensor>(int sample)>& sample_loss,
                                      const std::vector<double>& cost = {}) const;

 private:
  int workers_;
  int saved_threads_;
};

}  // namespace magi

#endif  // MAGI_TOOLS_TRAIN_TINY_BATCH_GRADIENT_H_
