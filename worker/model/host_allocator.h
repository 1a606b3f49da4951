// The process's CPU tensor allocator. Large blocks are mapped as their own pages (aligned
// transparent huge pages from 2 MiB up, where the kernel offers them on madvise) and, after a
// free, kept in a cache keyed by size, so that a DiT forward allocating the sizes the last one
// did reuses their pages instead of faulting and zeroing fresh ones. The cache never holds so
// much that live + cached passes the highest live figure so far: it only recycles pages under
// the tensors' own high-water mark, so the resident set peaks where the tensors do. (Keeping
// every freed block in glibc's heap instead, as before, fragments: blocks of one phase's sizes
// cannot serve the next phase's, and the heap only grows.)
//
// Small blocks (below kLargeBlockBytes) go to posix_memalign / free as LibTorch's default does.
// Thread-safe.

#ifndef MAGI_WORKER_MODEL_HOST_ALLOCATOR_H_
#define MAGI_WORKER_MODEL_HOST_ALLOCATOR_H_

#include <cstdint>

#include "absl/status/status.h"

namespace magi {

struct HostAllocatorStats {
  int64_t live_bytes = 0;         // mapped large blocks held by tensors
  int64_t cached_bytes = 0;       // mapped large blocks kept for reuse
  int64_t peak_live_bytes = 0;    // highest live_bytes
  int64_t peak_mapped_bytes = 0;  // highest live + cached: never above peak_live_bytes
  int64_t hits = 0;               // large allocations served by a cached block of their size
  int64_t misses = 0;             // large allocations that mapped new pages
  int64_t evictions = 0;          // cached blocks unmapped to stay within the bound
};

// Blocks of at least this many bytes are mapped and cached; smaller ones are malloc'd.
inline constexpr int64_t kLargeBlockBytes = int64_t{1} << 20;
// The default bound on cached bytes (docs/schedule.md, "Host memory").
inline constexpr int64_t kDefaultHostCacheBytes = int64_t{256} << 20;
inline constexpr int64_t kMaxHostCacheMb = int64_t{1} << 20;  // 1 TiB

// Makes this allocator LibTorch's CPU allocator (process-wide). The first call installs it;
// later calls only change the bound (a smaller bound unmaps cached blocks at once). The cache
// holds at most `cache_bytes`, and never more than the highest live figure so far minus the
// live bytes now: it recycles pages under the tensors' own high-water mark and so never
// raises the peak resident set. Tensors
// allocated before installation keep their own deleters. `cache_bytes` in [0, 1 TiB]; 0 keeps
// nothing (every large block is unmapped when freed).
absl::Status InstallHostAllocator(int64_t cache_bytes = kDefaultHostCacheBytes);

// Whether InstallHostAllocator has run in this process.
bool HostAllocatorInstalled();

// Unmaps every cached block (e.g. between phases whose activation sizes differ).
void TrimHostAllocatorCache();

HostAllocatorStats GetHostAllocatorStats();

}  // namespace magi

#endif  // MAGI_WORKER_MODEL_HOST_ALLOCATOR_H_
