// A bounded LRU cache from cleaned prompt (+ max_length) to its T5 embedding and mask.
//
// Bounded by bytes of tensor data; an entry larger than the whole budget is not stored.
// Thread-safe (one mutex); the returned tensors are shared, callers must not modify them.
#ifndef MAGI_WORKER_T5_EMBEDDING_CACHE_H_
#define MAGI_WORKER_T5_EMBEDDING_CACHE_H_

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>

#include <ATen/core/Tensor.h>

#include "absl/synchronization/mutex.h"

namespace magi {

struct CachedEmbedding {
  at::Tensor embedding;  // [1, L, C] float32
  at::Tensor mask;       // [1, L] int64
};

class EmbeddingCache {
 public:
  explicit EmbeddingCache(int64_t max_bytes) : max_bytes_(max_bytes) {}
  EmbeddingCache(const EmbeddingCache&) = delete;
  EmbeddingCache& operator=(const EmbeddingCache&) = delete;

  // Counts a hit or a miss; a hit becomes most recently used.
  std::optional<CachedEmbedding> Lookup(const std::string& key);
  // Inserts or replaces, then evicts least recently used entries down to the budget.
  void Insert(const std::string& key, const CachedEmbedding& value);
  void Clear();

  int64_t hits() const;
  int64_t misses() const;
  int64_t bytes() const;
  int64_t entries() const;
  int64_t max_bytes() const { return max_bytes_; }

 private:
  struct Entry {
    std::string key;
    CachedEmbedding value;
    int64_t bytes;
  };
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t max_bytes_;
  mutable absl::Mutex mu_;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // front = most recent
  std::unordered_map<std::string, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace magi

#endif  // MAGI_WORKER_T5_EMBEDDING_CACHE_H_
