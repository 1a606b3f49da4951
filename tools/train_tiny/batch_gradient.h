// The data-parallel step both trainers of `magi-train-tiny` use (tools/train_tiny): a batch's
// samples computed several at once, each on its own thread, with weights that do not depend
// on how many threads there were.
//
// Each sample's loss gets its own gradient (torch::autograd::grad, nothing accumulated into
// .grad while the workers run), and the batch's gradient is their sum in sample order divided
// by the batch size: the gradient of the mean of the samples' losses, bit-equal for any
// worker count. Random draws belong before the call, in sample order, on the caller's thread.
//
// Thread safety: one call at a time; `sample_loss` runs concurrently on `workers` threads, for
// distinct samples.
#ifndef MAGI_TOOLS_TRAIN_TINY_BATCH_GRADIENT_H_
#define MAGI_TOOLS_TRAIN_TINY_BATCH_GRADIENT_H_

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

#include "absl/status/statusor.h"

namespace magi {

// Sets ATen's intra-op thread count for a scope, restoring it after. The tiny models' ops are
// too small for intra-op threads to help (measured, docs/training.md): with several workers
// each computes on one.
class AtenThreads {
 public:
  explicit AtenThreads(int n);
  ~AtenThreads();
  AtenThreads(const AtenThreads&) = delete;
  AtenThreads& operator=(const AtenThreads&) = delete;

 private:
  int saved_;
};

// Sets every tensor of `trainable` (leaves that require grad) to the gradient of the mean of
// sample_loss(0) .. sample_loss(n - 1) -- each a scalar -- with sample i computed on worker
// i % workers (worker 0 is the calling thread). A weight no sample reaches gets an undefined
// .grad. Returns that mean loss, or the first failing sample's status (an exception from
// ATen becomes an Internal error naming `what`).
absl::StatusOr<double> MeanGradient(const std::vector<at::Tensor>& trainable, int n, int workers, const char* what,
                                    const std::function<absl::StatusOr<at::Tensor>(int sample)>& sample_loss);

}  // namespace magi

#endif  // MAGI_TOOLS_TRAIN_TINY_BATCH_GRADIENT_H_
