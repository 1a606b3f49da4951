// Rendezvous waits: a rank that starts before rank 0 retries until rank 0 appears (pods of
// a multi-node group start minutes apart), and gives up with a clear error at the deadline.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include <ATen/ATen.h>

#include <gtest/gtest.h>

#include "parallel/rank_group.h"

namespace magi {
namespace {

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

RendezvousOptions Options(int port, int rank) {
  RendezvousOptions o;
  o.master_port = port;
  o.rank = rank;
  o.local_rank = rank;
  o.world_size = 2;
  o.timeout = std::chrono::seconds(10);
  o.rendezvous_timeout = std::chrono::seconds(30);
  o.rendezvous_retry = std::chrono::seconds(1);
  return o;
}

TEST(RendezvousTest, ARankStartedBeforeRankZeroWaitsForIt) {
  const int port = FreePort();
  absl::StatusOr<std::unique_ptr<RankGroup>> follower;
  std::thread t([&] { follower = RankGroup::Join(Options(port, 1), 1, 2); });
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // rank 1 retries meanwhile
  auto leader = RankGroup::Join(Options(port, 0), 1, 2);
  t.join();
  ASSERT_TRUE(leader.ok()) << leader.status();
  ASSERT_TRUE(follower.ok()) << follower.status();
  EXPECT_EQ((*follower)->rank(), 1);
}

// CFG-parallel replicas (--cfg): 4 ranks as cfg 2 x tp 2 with two job slots. Rank r holds TP
// shard r % 2 of replica r / 2; the TP groups and the forward order stay within a replica, and
// each slot's CFG channel joins equal shards.
TEST(RendezvousTest, CfgReplicasGroupEqualShardsAndKeepTpWithinAReplica) {
  const int port = FreePort();
  constexpr int kWorld = 4;
  std::vector<absl::StatusOr<std::unique_ptr<RankGroup>>> groups(kWorld);
  std::vector<std::thread> threads;
  for (int r = 0; r < kWorld; ++r) {
    threads.emplace_back([&, r] {
      RendezvousOptions o = Options(port, r);
      o.world_size = kWorld;
      groups[r] = RankGroup::Join(o, /*tp=*/2, /*cp=*/1, /*cfg=*/2, /*job_slots=*/2);
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < kWorld; ++r) ASSERT_TRUE(groups[r].ok()) << "rank " << r << ": " << groups[r].status();
  std::vector<int64_t> tp_sum(kWorld), cfg_value(kWorld), slot_value(kWorld), order_sum(kWorld);
  threads.clear();
  for (int r = 0; r < kWorld; ++r) {
    threads.emplace_back([&, r] {
      RankGroup& g = **groups[r];
      EXPECT_EQ(g.layout().tp_rank, r % 2);
      EXPECT_EQ(g.layout().tp_size, 2);
      EXPECT_EQ(g.cfg_rank(), r / 2);
      EXPECT_EQ(g.cfg().size(), 2);
      EXPECT_EQ(g.cfg().rank(), r / 2);
      at::Tensor t = at::full({1}, static_cast<int64_t>(1) << r, at::kLong);
      EXPECT_TRUE(g.tp().AllReduceSum(t, "test.tp").ok());
      tp_sum[r] = t.item<int64_t>();
      at::Tensor b = at::full({1}, static_cast<int64_t>(100 + r), at::kLong);
      EXPECT_TRUE(g.cfg().Broadcast(b, 1, "test.cfg").ok());  // from replica 1's rank
      cfg_value[r] = b.item<int64_t>();
      EXPECT_EQ(g.cfg_channel(1).size(), 2);
      EXPECT_EQ(g.cfg_channel(1).rank(), r / 2);
      at::Tensor c = at::full({1}, static_cast<int64_t>(200 + r), at::kLong);
      EXPECT_TRUE(g.cfg_channel(1).Broadcast(c, 0, "test.cfg_slot1").ok());  // from replica 0's rank
      slot_value[r] = c.item<int64_t>();
      EXPECT_EQ(g.forward_order().size(), 2);
      EXPECT_EQ(g.forward_order().rank(), r % 2);
      at::Tensor o = at::full({1}, static_cast<int64_t>(1) << r, at::kLong);
      EXPECT_TRUE(g.forward_order().AllReduceSum(o, "test.order").ok());
      order_sum[r] = o.item<int64_t>();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(tp_sum, (std::vector<int64_t>{3, 3, 12, 12}));
  EXPECT_EQ(cfg_value, (std::vector<int64_t>{102, 103, 102, 103}));
  EXPECT_EQ(slot_value, (std::vector<int64_t>{200, 201, 200, 201}));
  EXPECT_EQ(order_sum, (std::vector<int64_t>{3, 3, 12, 12}));
  for (auto& g : groups) g->reset();
}

TEST(RendezvousTest, GivesUpAtTheDeadlineNamingTheAddress) {
  RendezvousOptions o = Options(FreePort(), 1);
  o.rendezvous_timeout = std::chrono::milliseconds(2500);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = RankGroup::Join(o, 1, 2);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("rendezvous at 127.0.0.1:"), std::string::npos) << r.status();
  EXPECT_GE(s, 0.9);  // it waited (c10d rounds its connect timeout down to whole seconds)
  EXPECT_LT(s, 15.0);
}

}  // namespace
}  // namespace magi
