#include "worker/t5/embedding_cache.h"

namespace magi {

std::optional<CachedEmbedding> EmbeddingCache::Lookup(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->value;
}

void EmbeddingCache::Insert(const std::string& key, const CachedEmbedding& value) {
  const int64_t size = static_cast<int64_t>(value.embedding.nbytes() + value.mask.nbytes() + key.size());
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    bytes_ -= it->second->bytes;
    lru_.erase(it->second);
    index_.erase(it);
  }
  if (size > max_bytes_) return;
  lru_.push_front(Entry{key, value, size});
  index_[key] = lru_.begin();
  bytes_ += size;
  EvictLocked();
}

void EmbeddingCache::EvictLocked() {
  while (bytes_ > max_bytes_ && !lru_.empty()) {
    bytes_ -= lru_.back().bytes;
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
}

void EmbeddingCache::Clear() {
  absl::MutexLock lock(&mu_);
  lru_.clear();
  index_.clear();
  bytes_ = 0;
}

int64_t EmbeddingCache::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}
int64_t EmbeddingCache::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}
int64_t EmbeddingCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}
int64_t EmbeddingCache::entries() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(lru_.size());
}

}  // namespace magi
