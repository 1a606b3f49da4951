#include "worker/model/host_allocator.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <list>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include "absl/strings/str_cat.h"

namespace magi {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;
// Blocks from here up are mapped as whole, aligned huge pages and advised as such. A fresh
// huge page costs one fault instead of 512: measured on config M (2 chunks, recompute), with
// huge pages only from 16 MiB up and no cache above the live peak, 152 s instead of 112 s.
constexpr size_t kHugeFrom = kHugePage;
// Below kHugeFrom, sizes are rounded to 64 KiB so that near sizes share cache entries.
constexpr size_t kSmallGranule = size_t{64} << 10;
constexpr size_t kSmallAlignment = 64;  // LibTorch's CPU alignment

size_t RoundUp(size_t n, size_t m) { return (n + m - 1) / m * m; }

size_t MappedSize(size_t n) { return n >= kHugeFrom ? RoundUp(n, kHugePage) : RoundUp(n, kSmallGranule); }

class HostAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    auto* self = const_cast<HostAllocator*>(this);
    void* p = self->Allocate(n);
    return {p, p, &HostAllocator::Delete, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &HostAllocator::Delete; }

  static HostAllocator& Get() {
    static HostAllocator* const instance = new HostAllocator();  // outlives every tensor
    return *instance;
  }

  void SetCap(int64_t cap) {
    std::lock_guard<std::mutex> lock(mu_);
    cap_ = static_cast<size_t>(cap);
    EvictToLocked(AllowedCacheLocked());
  }
  void Trim() {
    std::lock_guard<std::mutex> lock(mu_);
    EvictToLocked(0);
  }
  HostAllocatorStats Stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  struct Cached {
    void* ptr;
    size_t size;
  };

  void* Allocate(size_t n) {
    if (n == 0) return nullptr;
    if (n < static_cast<size_t>(kLargeBlockBytes)) {
      void* p = nullptr;
      if (posix_memalign(&p, kSmallAlignment, n) != 0 || p == nullptr) throw std::bad_alloc();
      return p;
    }
    const size_t size = MappedSize(n);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = TakeCachedLocked(size);
    live_bytes_ += size;
    peak_live_ = std::max(peak_live_, live_bytes_);
    // What stays cached must fit under the bound with this block live.
    EvictToLocked(AllowedCacheLocked());
    if (p == nullptr) {
      p = MapLocked(size);
      if (p == nullptr) {
        live_bytes_ -= size;
        UpdateStatsLocked();
        throw std::bad_alloc();
      }
      ++stats_.misses;
    }
    live_[p] = size;
    UpdateStatsLocked();
    return p;
  }

  // The cached block of exactly `size` bytes, or nullptr.
  void* TakeCachedLocked(size_t size) {
    auto it = by_size_.find(size);
    if (it == by_size_.end()) return nullptr;
    ++stats_.hits;
    return RemoveCachedLocked(it);
  }

  // Fresh pages for `size` bytes. Huge sizes start on a huge-page boundary (the kernel backs
  // only aligned 2 MiB ranges with huge pages) and are advised as huge.
  static void* MapLocked(size_t size) {
    if (size < kHugeFrom) {
      void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      return p == MAP_FAILED ? nullptr : p;
    }
    void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const uintptr_t begin = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (begin + kHugePage - 1) / kHugePage * kHugePage;
    if (aligned > begin) munmap(raw, aligned - begin);
    const uintptr_t tail = begin + size + kHugePage - (aligned + size);
    if (tail > 0) munmap(reinterpret_cast<void*>(aligned + size), tail);
    void* p = reinterpret_cast<void*>(aligned);
    madvise(p, size, MADV_HUGEPAGE);  // advice only; failure is harmless
    return p;
  }

  void* RemoveCachedLocked(std::multimap<size_t, std::list<Cached>::iterator>::iterator it) {
    void* p = it->second->ptr;
    cached_ -= it->first;
    lru_.erase(it->second);
    by_size_.erase(it);
    return p;
  }

  static void Delete(void* p) {
    if (p != nullptr) Get().Free(p);
  }

  void Free(void* p) {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {  // a small block
      lock.unlock();
      free(p);
      return;
    }
    const size_t size = it->second;
    live_.erase(it);
    live_bytes_ -= size;
    if (size > AllowedCacheLocked()) {  // it could not stay cached
      UpdateStatsLocked();
      lock.unlock();
      munmap(p, size);
      return;
    }
    lru_.push_back({p, size});
    by_size_.emplace(size, std::prev(lru_.end()));
    cached_ += size;
    EvictToLocked(AllowedCacheLocked());
  }

  // The cache holds at most cap_ bytes, and never so much that live + cached passes the
  // highest live figure so far: the cache only recycles pages below the high-water mark that
  // the tensors themselves set, so it does not raise the process's peak.
  size_t AllowedCacheLocked() const { return std::min(cap_, peak_live_ - live_bytes_); }

  // Unmaps the least recently freed cached blocks until at most `target` bytes stay cached.
  void EvictToLocked(size_t target) {
    while (cached_ > target && !lru_.empty()) {
      const Cached c = lru_.front();
      auto range = by_size_.equal_range(c.size);
      for (auto it = range.first; it != range.second; ++it) {
        if (it->second == lru_.begin()) {
          by_size_.erase(it);
          break;
        }
      }
      lru_.pop_front();
      cached_ -= c.size;
      ++stats_.evictions;
      munmap(c.ptr, c.size);
    }
    UpdateStatsLocked();
  }

  void UpdateStatsLocked() {
    stats_.live_bytes = static_cast<int64_t>(live_bytes_);
    stats_.cached_bytes = static_cast<int64_t>(cached_);
    stats_.peak_live_bytes = static_cast<int64_t>(peak_live_);
    stats_.peak_mapped_bytes = std::max(stats_.peak_mapped_bytes, static_cast<int64_t>(live_bytes_ + cached_));
  }

  std::mutex mu_;
  size_t cap_ = static_cast<size_t>(kDefaultHostCacheBytes);
  size_t cached_ = 0;
  size_t live_bytes_ = 0;
  size_t peak_live_ = 0;  // highest live_bytes_ so far
  std::unordered_map<void*, size_t> live_;                    // large blocks held by tensors
  std::list<Cached> lru_;                                     // cached, oldest free first
  std::multimap<size_t, std::list<Cached>::iterator> by_size_;  // cached, by mapped size
  HostAllocatorStats stats_;
};

std::atomic<bool> g_installed{false};

}  // namespace

absl::Status InstallHostAllocator(int64_t cache_bytes) {
  if (cache_bytes < 0 || cache_bytes > (kMaxHostCacheMb << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("host allocator cache: ", cache_bytes,
                                                   " bytes is out of range; allowed [0, ", kMaxHostCacheMb,
                                                   " MiB]"));
  }
  HostAllocator& a = HostAllocator::Get();
  a.SetCap(cache_bytes);
  static std::once_flag once;
  std::call_once(once, [&a] {
    // Priority above the default allocator's registration, so a later default registration
    // (none in LibTorch today) cannot displace it.
    c10::SetAllocator(c10::DeviceType::CPU, &a, /*priority=*/1);
    g_installed.store(true);
  });
  return absl::OkStatus();
}

bool HostAllocatorInstalled() { return g_installed.load(); }

void TrimHostAllocatorCache() { HostAllocator::Get().Trim(); }

HostAllocatorStats GetHostAllocatorStats() { return HostAllocator::Get().Stats(); }

}  // namespace magi
