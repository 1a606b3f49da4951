// A KvCache that holds only the chunks a later forward can still read (spec pipeline.md
// §2.8): rows are stored per chunk, and DropBelow(c) frees every chunk under c. The stage
// plan says, for every step, the lowest chunk any later step reads (keep_cache_from), so
// with the shipped kv ranges the memory stays constant however long the video is.
//
// Read(layer, end) returns a fresh [end, G, 2*hd] tensor (ReadInto fills the caller's) whose
// dropped rows are zero
// (the DiT only attends within kv_range, which never reaches them); reading a row that was
// never written, or a dropped row that a range needs, is the caller's bug and the zero
// rows make it visible in tests rather than silently reusing stale keys.
//
// Not thread-safe: one forward at a time. Owns its tensors.
#ifndef MAGI_WORKER_ENGINE_WINDOWED_KV_CACHE_H_
#define MAGI_WORKER_ENGINE_WINDOWED_KV_CACHE_H_

#include <cstdint>
#include <map>
#include <vector>

#include <ATen/core/Tensor.h>

#include "worker/model/kv_cache.h"

namespace magi {

class WindowedKvCache : public KvCache {
 public:
  // `tokens_per_chunk` rows make one chunk; every read and write must be chunk-aligned.
  // Rows are [groups, 2*head_dim]; reads come back with `options` (dtype, device).
  WindowedKvCache(int num_layers, int64_t tokens_per_chunk, int groups, int head_dim, at::TensorOptions options);
  WindowedKvCache(const WindowedKvCache&) = delete;
  WindowedKvCache& operator=(const WindowedKvCache&) = delete;

  absl::StatusOr<at::Tensor> Read(int layer, int64_t end) override;
  absl::Status Write(int layer, int64_t start, const at::Tensor& kv) override;
  // Copies the chunks straight into `dst` (dropped rows zeroed), without Read()'s tensor.
  absl::Status ReadInto(int layer, int64_t end, const at::Tensor& dst) override;

  // Frees chunks [0, chunk) of every layer; later writes below `chunk` are errors.
  void DropBelow(int chunk);

  // Bytes held now, and the most held at any time since construction.
  int64_t bytes() const { return bytes_; }
  int64_t peak_bytes() const { return peak_bytes_; }
  // Chunks held by `layer`.
  int chunks_held(int layer) const { return static_cast<int>(layers_[layer].size()); }

 private:
  int64_t tokens_per_chunk_;
  int groups_;
  int head_dim_;
  at::TensorOptions options_;
  int dropped_below_ = 0;
  std::vector<std::map<int, at::Tensor>> layers_;  // chunk index -> [tokens_per_chunk, G, 2*hd]
  int64_t bytes_ = 0;
  int64_t peak_bytes_ = 0;
};

}  // namespace magi

#endif  // MAGI_WORKER_ENGINE_WINDOWED_KV_CACHE_H_
