#include "worker/engine/kv_write_filter.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "worker/engine/windowed_kv_cache.h"

namespace magi {
namespace {

constexpr int64_t kChunk = 4;  // rows per chunk

at::Tensor Rows(int64_t n, float base) {
  return at::arange(n * 2 * 6, at::kFloat).add(base).view({n, 2, 6});
}

TEST(KvWriteFilter, KeepsOnlyTheWritableRowsOfAWrite) {
  WindowedKvCache cache(2, kChunk, 2, 3, at::TensorOptions().dtype(at::kFloat));
  KvWriteFilter filter(&cache);
  // Nothing writable: a three-chunk write stores nothing.
  filter.SetWritableRows(0, 0);
  ASSERT_TRUE(filter.Write(0, 0, Rows(3 * kChunk, 0)).ok());
  EXPECT_EQ(cache.chunks_held(0), 0);
  EXPECT_EQ(filter.rows_dropped(), 3 * kChunk);
  // Chunk 1 writable: of a write of chunks 0..2 only chunk 1's rows reach the cache.
  filter.SetWritableRows(kChunk, 2 * kChunk);
  const at::Tensor w = Rows(3 * kChunk, 100);
  ASSERT_TRUE(filter.Write(0, 0, w).ok());
  EXPECT_EQ(cache.chunks_held(0), 1);
  EXPECT_EQ(filter.rows_written(), kChunk);
  EXPECT_EQ(filter.rows_dropped(), 5 * kChunk);
  // A read through the filter reaches the cache; chunk 0 was never stored: an error, not stale rows.
  EXPECT_FALSE(filter.Read(0, 2 * kChunk).ok());
  cache.DropBelow(1);
  auto r = filter.Read(0, 2 * kChunk);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(at::equal(r->narrow(0, kChunk, kChunk), w.narrow(0, kChunk, kChunk)));
  EXPECT_TRUE(at::equal(r->narrow(0, 0, kChunk), at::zeros({kChunk, 2, 6})));
  // A write that starts inside the writable rows is clipped at their end.
  filter.SetWritableRows(2 * kChunk, 3 * kChunk);
  ASSERT_TRUE(filter.Write(0, 2 * kChunk, Rows(2 * kChunk, 7)).ok());
  EXPECT_EQ(cache.chunks_held(0), 2);
  at::Tensor dst = at::empty({3 * kChunk, 2, 6});
  ASSERT_TRUE(filter.ReadInto(0, 3 * kChunk, dst).ok());
  EXPECT_TRUE(at::equal(dst.narrow(0, 2 * kChunk, kChunk), Rows(2 * kChunk, 7).narrow(0, 0, kChunk)));
}

}  // namespace
}  // namespace magi
