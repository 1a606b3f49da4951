#include "worker/model/host_allocator.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

namespace magi {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

at::Tensor Floats(int64_t mib) { return at::empty({mib * kMiB / 4}, at::kFloat); }

class HostAllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InstallHostAllocator(64 * kMiB).ok());
    TrimHostAllocatorCache();
  }
};

TEST_F(HostAllocatorTest, IsLibTorchsCpuAllocatorAndKeepsValues) {
  EXPECT_TRUE(HostAllocatorInstalled());
  const HostAllocatorStats before = GetHostAllocatorStats();
  at::Tensor a = at::arange(4 * kMiB, at::kFloat);  // 16 MiB: a large block
  at::Tensor b = a * 2 + 1;
  EXPECT_EQ(b[12345].item<float>(), 12345.0f * 2 + 1);
  EXPECT_EQ(b[4 * kMiB - 1].item<float>(), (4 * kMiB - 1) * 2.0f + 1);
  const HostAllocatorStats during = GetHostAllocatorStats();
  EXPECT_GE(during.live_bytes - before.live_bytes, 2 * 16 * kMiB);
  at::Tensor small = at::ones({16});  // malloc'd, not counted
  EXPECT_EQ(GetHostAllocatorStats().live_bytes, during.live_bytes);
  EXPECT_EQ(small.sum().item<float>(), 16.0f);
}

TEST_F(HostAllocatorTest, AFreedBlockServesTheNextAllocationOfItsSize) {
  void* first = nullptr;
  {
    at::Tensor t = Floats(8);
    first = t.data_ptr();
    t.fill_(3.0f);
  }
  const HostAllocatorStats freed = GetHostAllocatorStats();
  EXPECT_GE(freed.cached_bytes, 8 * kMiB);
  at::Tensor again = Floats(8);
  const HostAllocatorStats after = GetHostAllocatorStats();
  EXPECT_EQ(again.data_ptr(), first);
  EXPECT_EQ(after.hits, freed.hits + 1);
  EXPECT_EQ(after.misses, freed.misses);
  EXPECT_EQ(after.cached_bytes, freed.cached_bytes - 8 * kMiB);
}

TEST_F(HostAllocatorTest, TheCacheStaysWithinItsBound) {
  {
    std::vector<at::Tensor> many;
    for (int i = 0; i < 10; ++i) many.push_back(Floats(16));  // 160 MiB live
  }
  const HostAllocatorStats s = GetHostAllocatorStats();
  EXPECT_LE(s.cached_bytes, 64 * kMiB);
  EXPECT_GT(s.cached_bytes, 0);
  EXPECT_GE(s.evictions, 6);
  TrimHostAllocatorCache();
  EXPECT_EQ(GetHostAllocatorStats().cached_bytes, 0);
}

// The cache never lifts live + cached above the highest live figure: after a peak, a miss of
// a new size gives back cached blocks first.
TEST_F(HostAllocatorTest, NeverHoldsMoreThanThePeakOfLiveTensors) {
  ASSERT_TRUE(InstallHostAllocator(1024 * kMiB).ok());
  const int64_t live0 = GetHostAllocatorStats().live_bytes;
  {
    // Larger than anything before in this process, so this sets the peak. empty() touches
    // no pages: the test costs address space, not memory.
    at::Tensor a = Floats(256), b = Floats(256);
  }
  HostAllocatorStats s = GetHostAllocatorStats();
  const int64_t peak = live0 + 512 * kMiB;
  ASSERT_EQ(s.peak_live_bytes, peak);
  EXPECT_EQ(s.cached_bytes, 512 * kMiB);  // both kept: within the bound and under the peak
  at::Tensor c = Floats(384);  // a new size: only peak - live0 - 384 MiB may stay cached
  s = GetHostAllocatorStats();
  EXPECT_EQ(s.peak_live_bytes, peak);
  EXPECT_LE(s.live_bytes + s.cached_bytes, peak);
  EXPECT_EQ(s.cached_bytes, 0);  // both 256 MiB blocks had to go
  EXPECT_LE(s.peak_mapped_bytes, s.peak_live_bytes);
  ASSERT_TRUE(InstallHostAllocator(64 * kMiB).ok());
}

TEST_F(HostAllocatorTest, ABoundOfZeroKeepsNothing) {
  ASSERT_TRUE(InstallHostAllocator(0).ok());
  { at::Tensor t = Floats(8); }
  EXPECT_EQ(GetHostAllocatorStats().cached_bytes, 0);
  ASSERT_TRUE(InstallHostAllocator(64 * kMiB).ok());
}

TEST_F(HostAllocatorTest, RefusesABoundOutOfRange) {
  absl::Status s = InstallHostAllocator(-1);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("allowed [0, "), std::string::npos) << s.message();
  EXPECT_FALSE(InstallHostAllocator((kMaxHostCacheMb + 1) << 20).ok());
}

}  // namespace
}  // namespace magi
