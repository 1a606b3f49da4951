// The token split of the Ulysses exchange (its collectives run multi-process in
// parallel_group_test's CP goldens).
#include "parallel/sequence_exchange.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace magi {
namespace {

TEST(UlyssesExchangeTest, UnevenTokenCountsGoToTheFirstRanks) {
  // 7 tokens over 3 ranks: 3, 2, 2.
  const std::vector<int64_t> want = {3, 2, 2};
  int64_t next = 0;
  for (int r = 0; r < 3; ++r) {
    UlyssesExchange x(nullptr, r, 3, 7, 1);
    EXPECT_EQ(x.rows_per_rank(), want);
    EXPECT_EQ(x.offset(), next) << "rank " << r;
    EXPECT_EQ(x.local(), want[r]);
    const at::Tensor whole = at::arange(7, at::kLong).view({7, 1});
    EXPECT_TRUE(at::equal(x.Slice(whole), whole.narrow(0, next, want[r])));
    next += want[r];
  }
}

TEST(UlyssesExchangeTest, OneRankIsTheIdentityWithoutACommunicator) {
  UlyssesExchange x(nullptr, 0, 1, 5, 2);
  const at::Tensor t = at::randn({5, 2, 4, 3});
  auto scattered = x.ScatterHeads(t, "q");
  ASSERT_TRUE(scattered.ok()) << scattered.status();
  EXPECT_TRUE(at::equal(*scattered, t));
  auto gathered = x.GatherHeads(t, "out");
  ASSERT_TRUE(gathered.ok());
  EXPECT_TRUE(at::equal(*gathered, t));
  auto tokens = x.GatherTokens(t, "all");
  ASSERT_TRUE(tokens.ok());
  EXPECT_TRUE(at::equal(*tokens, t));
  at::Tensor partial = t.clone();
  EXPECT_TRUE(SumPartials(nullptr, partial, "tp").ok());
  EXPECT_TRUE(at::equal(partial, t));
}

}  // namespace
}  // namespace magi
