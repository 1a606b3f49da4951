// Multi-process tests: real rank processes over c10d/Gloo on loopback.
#include <chrono>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "tests/golden_required.h"

#include "parallel/local_launcher.h"

namespace magi {
namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(ParallelGroupTest, CollectivesMoveBf16AndCountBytes) {
  for (int world : {2, 3}) {
    LaunchOptions o;
    o.world_size = world;
    auto st = RunLocalGroup({MAGI_RANK_PROBE, "collectives"}, o);
    EXPECT_TRUE(st.ok()) << "world " << world << ": " << st;
  }
}

TEST(ParallelGroupTest, ADeadRankFailsTheGroupInsteadOfHanging) {
  LaunchOptions o;
  o.world_size = 3;
  o.env = {"MAGI_DIST_TIMEOUT_S=5"};
  const auto t0 = std::chrono::steady_clock::now();
  auto st = RunLocalGroup({MAGI_RANK_PROBE, "die"}, o);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("rank 1 exited with code 7"), std::string::npos) << st;
  // The launcher sees the exit at once (measured 2.7-3.7 s from launch, mostly start-up): well
  // before the 5 s collective timeout would fire on the survivors, with room for a loaded host.
  EXPECT_LT(Seconds(t0), 10.0);
}

TEST(ParallelGroupTest, AHungRankIsDetectedWithinTheTimeout) {
  LaunchOptions o;
  o.world_size = 2;
  o.env = {"MAGI_DIST_TIMEOUT_S=3"};
  o.grace = std::chrono::seconds(1);
  const auto t0 = std::chrono::steady_clock::now();
  auto st = RunLocalGroup({MAGI_RANK_PROBE, "hang"}, o);
  ASSERT_FALSE(st.ok());
  // Rank 0 gives up (heartbeat monitor exit 3, or the collective's own timeout, exit 4).
  EXPECT_NE(std::string(st.message()).find("rank 0"), std::string::npos) << st;
  // 3 s timeout + 1 s grace + start-up: measured 6.3-6.5 s; 12 s leaves room for a loaded host
  // and fails a detector that waits several timeouts.
  EXPECT_LT(Seconds(t0), 12.0);
}

// The nccl backend: on GPUs (one per rank, CUDA LibTorch) the probe runs the collectives on
// the NCCL TP group and the Gloo world group; without GPUs every rank must refuse clearly
// instead of falling back to Gloo or hanging in ncclCommInitRank (rank_probe_main.cc).
TEST(ParallelGroupTest, NcclBackendRunsOnGpusOrEveryRankRefusesClearly) {
  LaunchOptions o;
  o.world_size = 2;
  o.env = {"MAGI_DIST_TIMEOUT_S=20"};
  const auto t0 = std::chrono::steady_clock::now();
  auto st = RunLocalGroup({MAGI_RANK_PROBE, "nccl"}, o);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_LT(Seconds(t0), 60.0);
}

TEST(ParallelGroupTest, OneRankNcclCommunicatorRunsOnAGpuOrRefusesClearly) {
  LaunchOptions o;
  o.world_size = 1;
  auto st = RunLocalGroup({MAGI_RANK_PROBE, "nccl1"}, o);
  EXPECT_TRUE(st.ok()) << st;
}

// The DiT's golden forward cases through launched groups (spec parallel.md §5).
void ExpectGoldenPasses(const std::string& kind, const std::vector<std::string>& extra, int min_passed) {
  const std::string golden = MAGI_GOLDEN_DIR;
  if (FILE* f = std::fopen((golden + "/golden.json").c_str(), "r")) {
    std::fclose(f);
  } else {
    MAGI_SKIP_WITHOUT_GOLDEN("no golden folder at " << golden);
  }
  std::string cmd = std::string(MAGI_GOLDEN_BIN) + " " + golden + " --only " + kind;
  for (const auto& e : extra) cmd += " " + e;
  cmd += " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int rc = pclose(p);
  EXPECT_EQ(rc, 0) << out;
  // The closing line must show real work: no failure, no skip (a rank whose DiT did not load
  // would otherwise leave only the replay half, which runs no DiT), and a pass count.
  int passed = -1, failed = -1, skipped = -1;
  const size_t at = out.rfind(" passed, ");
  const size_t line = out.rfind('\n', at == std::string::npos ? 0 : at);
  ASSERT_NE(at, std::string::npos) << out;
  ASSERT_EQ(std::sscanf(out.c_str() + (line == std::string::npos ? 0 : line + 1), "%d passed, %d failed, %d skipped",
                        &passed, &failed, &skipped),
            3)
      << out;
  EXPECT_EQ(failed, 0) << out;
  EXPECT_EQ(skipped, 0) << out;
  EXPECT_GE(passed, min_passed) << out;
  EXPECT_EQ(out.find("FAIL"), std::string::npos) << out;
}

TEST(ParallelDitTest, GoldenForwardsAtTp2) { ExpectGoldenPasses("forward", {"--tp", "2"}, 24); }
TEST(ParallelDitTest, GoldenForwardsAtCp2) { ExpectGoldenPasses("forward", {"--cp", "2"}, 15); }
TEST(ParallelDitTest, GoldenForwardsAtTp2Cp2) { ExpectGoldenPasses("forward", {"--tp", "2", "--cp", "2"}, 15); }
// Whole autoregressive runs (every inner forward, emitted chunk, final latents and the
// rank's share of the final KV cache) on launched groups.
TEST(ParallelDitTest, GoldenArRunsAtTp2) { ExpectGoldenPasses("ar", {"--tp", "2"}, 171); }
TEST(ParallelDitTest, GoldenArRunsAtCp2) { ExpectGoldenPasses("ar", {"--cp", "2"}, 171); }
TEST(ParallelDitTest, GoldenArRunsAtTp2Cp2) { ExpectGoldenPasses("ar", {"--tp", "2", "--cp", "2"}, 171); }

}  // namespace
}  // namespace magi
