// RankGroup's backend selection, in one process (the multi-process paths are in
// parallel_group_test.cc).
#include "parallel/rank_group.h"

#include <gtest/gtest.h>

namespace magi {
namespace {

TEST(RankGroupBackendTest, ParsesTheTwoBackendsAndNamesTheAllowedOnes) {
  EXPECT_EQ(*ParseCollectiveBackend("gloo"), CollectiveBackend::kGloo);
  EXPECT_EQ(*ParseCollectiveBackend("nccl"), CollectiveBackend::kNccl);
  auto bad = ParseCollectiveBackend("mpi");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("gloo or nccl"), absl::string_view::npos) << bad.status();
  EXPECT_STREQ(CollectiveBackendName(CollectiveBackend::kNccl), "nccl");
  EXPECT_STREQ(CollectiveBackendName(CollectiveBackend::kGloo), "gloo");
}

TEST(RankGroupBackendTest, NcclOnOneRankNeedsNoGpuButNeedsABuildWithNccl) {
  RendezvousOptions o;
  o.backend = CollectiveBackend::kNccl;
  auto g = RankGroup::Join(o, 1, 1);
  if (NcclCompiledIn()) {
    // A group of one has nothing to communicate: no NCCL communicator, no device touched.
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ((*g)->tp().size(), 1);
    EXPECT_EQ((*g)->cp().size(), 1);
  } else {
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(g.status().message().find("MAGI_WITH_CUDA"), absl::string_view::npos) << g.status();
  }
}

TEST(RankGroupBackendTest, AWrongLayoutFailsBeforeAnyBackendIsTouched) {
  RendezvousOptions o;
  o.world_size = 4;
  o.backend = CollectiveBackend::kNccl;
  auto g = RankGroup::Join(o, 2, 3);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find("needs WORLD_SIZE = 6"), absl::string_view::npos) << g.status();
}

}  // namespace
}  // namespace magi
