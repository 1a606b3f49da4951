// The DiT's self-attention KV cache, seen from the model: per layer, rows indexed by the
// absolute token position in the video (batch 1), each row [G, 2*hd] = [key | value] with
// the key taken after QK-norm and RoPE (spec dit.md §4.3).
//
// The model only reads rows [0, end) and writes rows [start, start + n); which rows are
// kept in memory is the implementation's business (the engine keeps only what a later
// stage can still read). Not thread-safe: one forward at a time.
#ifndef MAGI_WORKER_MODEL_KV_CACHE_H_
#define MAGI_WORKER_MODEL_KV_CACHE_H_

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace magi {

class KvCache {
 public:
  virtual ~KvCache() = default;
  // Rows [0, end) of `layer`, shape [end, G, 2*hd]. Rows never written are an error.
  virtual absl::StatusOr<at::Tensor> Read(int layer, int64_t end) = 0;
  // Stores `kv` [n, G, 2*hd] at rows [start, start + n) of `layer`.
  virtual absl::Status Write(int layer, int64_t start, const at::Tensor& kv) = 0;
  // Copies rows [0, end) of `layer` into `dst` ([end, G, 2*hd]; dtype and device converted by
  // the copy), with the errors of Read(). The DiT reads the cached prefix straight into its
  // key buffer with it: one copy per layer where Read() and a concatenation make two. The
  // default goes through Read().
  virtual absl::Status ReadInto(int layer, int64_t end, const at::Tensor& dst);
};

// The whole video's cache in one preallocated buffer per layer ([max_tokens, G, 2*hd]),
// like the reference. Simple; memory grows with video length.
class DenseKvCache : public KvCache {
 public:
  DenseKvCache(int num_layers, int64_t max_tokens, int groups, int head_dim, at::TensorOptions options);
  absl::StatusOr<at::Tensor> Read(int layer, int64_t end) override;
  absl::Status Write(int layer, int64_t start, const at::Tensor& kv) override;
  // The buffer of `layer` (for tests and goldens).
  const at::Tensor& buffer(int layer) const { return buffers_[layer]; }
  int64_t bytes() const;

 private:
  std::vector<at::Tensor> buffers_;
  std::vector<int64_t> written_end_;  // rows [0, written_end_) were all written at least once
};

}  // namespace magi

#endif  // MAGI_WORKER_MODEL_KV_CACHE_H_
