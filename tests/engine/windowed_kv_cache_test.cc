#include "worker/engine/windowed_kv_cache.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace magi {
namespace {

TEST(WindowedKvCache, ReadsWhatWasWrittenAndZerosDroppedChunks) {
  WindowedKvCache cache(2, 3, 1, 2, at::TensorOptions().dtype(at::kFloat));
  at::Tensor kv = at::arange(9 * 4, at::kFloat).view({9, 1, 4});
  ASSERT_TRUE(cache.Write(0, 0, kv).ok());
  auto r = cache.Read(0, 6);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(at::equal(*r, kv.narrow(0, 0, 6)));
  EXPECT_EQ(cache.bytes(), 9 * 4 * 4);
  cache.DropBelow(2);
  EXPECT_EQ(cache.bytes(), 3 * 4 * 4);
  EXPECT_EQ(cache.peak_bytes(), 9 * 4 * 4);
  r = cache.Read(0, 9);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(at::equal(r->narrow(0, 0, 6), at::zeros({6, 1, 4})));
  EXPECT_TRUE(at::equal(r->narrow(0, 6, 3), kv.narrow(0, 6, 3)));
  // Dropped rows cannot be written again; unaligned access is an error.
  EXPECT_FALSE(cache.Write(0, 3, kv.narrow(0, 0, 3)).ok());
  EXPECT_FALSE(cache.Write(0, 7, kv.narrow(0, 0, 3)).ok());
  EXPECT_FALSE(cache.Read(0, 4).ok());
  // Layer 1 was never written.
  EXPECT_FALSE(cache.Read(1, 9).ok());
  EXPECT_TRUE(cache.Read(1, 0).ok());
  EXPECT_FALSE(cache.Read(2, 0).ok());
}

TEST(WindowedKvCache, RewritesInPlace) {
  WindowedKvCache cache(1, 2, 1, 1, at::TensorOptions().dtype(at::kFloat));
  ASSERT_TRUE(cache.Write(0, 0, at::ones({4, 1, 2})).ok());
  ASSERT_TRUE(cache.Write(0, 2, at::full({4, 1, 2}, 2.0f)).ok());
  EXPECT_EQ(cache.bytes(), 6 * 2 * 4);
  auto r = cache.Read(0, 6);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[1][0][0].item<float>(), 1.0f);
  EXPECT_EQ((*r)[2][0][0].item<float>(), 2.0f);
}

}  // namespace
}  // namespace magi
