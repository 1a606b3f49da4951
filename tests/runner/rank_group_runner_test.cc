// The rank group's agreement on in-process ranks (threads over a fake communicator): a
// follower's failure ends the group's job at the next agreement with the follower's error,
// long before any heartbeat timeout; the leader's cancellation stops every rank at the same
// check; a healthy group agrees and succeeds.
#include "worker/main/rank_group_runner.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "tests/runner/fake_group.h"

namespace magi {
namespace {

// Polls the cancellation agreement `checks` times (as the engine does before each model
// call), then returns `result`; cancelled ends it early.
class PollingRunner : public JobRunner {
 public:
  PollingRunner(int checks, absl::Status result) : checks_(checks), result_(std::move(result)) {}
  std::string name() const override { return "polling"; }
  std::vector<::magi::internal::v1::ModelInfo> Models() const override { return {}; }
  absl::Status Run(const RunnerJob&, FrameSink& sink) override {
    for (int i = 0; i < checks_; ++i) {
      ++polls;
      if (sink.Cancelled()) return absl::CancelledError("cancelled");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return result_;
  }
  std::atomic<int> polls{0};

 private:
  int checks_;
  absl::Status result_;
};

class NullSink : public FrameSink {
 public:
  absl::Status OnPrefixChunk(int, const std::vector<RgbFrame>&) override { return absl::OkStatus(); }
  absl::Status OnChunk(int, const std::vector<RgbFrame>&) override { return absl::OkStatus(); }
  void OnProgress(const StepProgress&) override {}
  bool Cancelled() const override { return false; }
};

// The leader's sink: cancelled from the `after`-th poll on.
class CancelAfterSink : public NullSink {
 public:
  explicit CancelAfterSink(int after) : after_(after) {}
  bool Cancelled() const override { return ++polls_ >= after_; }

 private:
  const int after_;
  mutable int polls_ = 0;
};

TEST(RankGroupRunner, TheLeadersCancellationStopsEveryRankAtTheSameCheck) {
  FakeGroup g(3);
  PollingRunner f1_runner(1000, absl::OkStatus()), f2_runner(1000, absl::OkStatus());
  absl::Status f1, f2;
  std::thread t1([&] { f1 = RunGroupFollower(f1_runner, *g.comms[1]); });
  std::thread t2([&] { f2 = RunGroupFollower(f2_runner, *g.comms[2]); });
  auto leader_inner = std::make_unique<PollingRunner>(1000, absl::OkStatus());
  PollingRunner* leader_runner = leader_inner.get();
  absl::Status got, second;
  {
    GroupLeaderRunner leader(std::move(leader_inner), *g.comms[0]);
    CancelAfterSink cancel_at_4(4);
    got = leader.Run(RunnerJob(), cancel_at_4);
    // The group is in step afterwards: the next job runs to its end on every rank.
    NullSink sink;
    second = leader.Run(RunnerJob(), sink);
  }  // the destructor stops the followers
  t1.join();
  t2.join();
  EXPECT_TRUE(absl::IsCancelled(got)) << got;
  EXPECT_TRUE(second.ok()) << second;
  // 4 checks of the cancelled job (the 4th agreed "cancel"), then 1000 of the second job.
  EXPECT_EQ(leader_runner->polls.load(), 1004);
  EXPECT_EQ(f1_runner.polls.load(), 1004) << "follower 1 did not stop at the leader's check";
  EXPECT_EQ(f2_runner.polls.load(), 1004) << "follower 2 did not stop at the leader's check";
  EXPECT_TRUE(f1.ok()) << f1;
  EXPECT_TRUE(f2.ok()) << f2;
}

TEST(RankGroupRunner, AFollowerFailureFailsTheGroupAtTheNextAgreementWithItsMessage) {
  FakeGroup g(3);
  PollingRunner healthy(1000, absl::OkStatus()), failing(0, absl::ResourceExhaustedError("shard out of memory"));
  absl::Status f1, f2;
  std::thread t1([&] { f1 = RunGroupFollower(healthy, *g.comms[1]); });
  std::thread t2([&] { f2 = RunGroupFollower(failing, *g.comms[2]); });
  auto leader_inner = std::make_unique<PollingRunner>(1000, absl::OkStatus());
  PollingRunner* leader_runner = leader_inner.get();
  absl::Status got;
  double seconds = 0;
  {
    GroupLeaderRunner leader(std::move(leader_inner), *g.comms[0]);
    NullSink sink;
    const auto start = std::chrono::steady_clock::now();
    got = leader.Run(RunnerJob(), sink);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(leader_runner->polls.load(), 1) << "the leader ran on past the agreement that saw the failure";
  }  // the destructor stops the followers
  t1.join();
  t2.join();
  EXPECT_EQ(got.code(), absl::StatusCode::kResourceExhausted) << got;
  EXPECT_NE(got.message().find("rank 2 failed: shard out of memory"), std::string::npos) << got;
  EXPECT_LT(seconds, 5.0);
  EXPECT_EQ(healthy.polls.load(), 1) << "the healthy follower did not stop with the group";
  EXPECT_TRUE(f1.ok()) << f1;
  EXPECT_TRUE(f2.ok()) << f2;
}

TEST(RankGroupRunner, AHealthyGroupAgreesOnEveryCheckAndSucceeds) {
  FakeGroup g(2);
  PollingRunner follower(5, absl::OkStatus());
  absl::Status f;
  std::thread t([&] { f = RunGroupFollower(follower, *g.comms[1]); });
  absl::Status got;
  {
    GroupLeaderRunner leader(std::make_unique<PollingRunner>(5, absl::OkStatus()), *g.comms[0]);
    NullSink sink;
    got = leader.Run(RunnerJob(), sink);
    // A second job after the first: the agreement leaves the group in step.
    if (got.ok()) got = leader.Run(RunnerJob(), sink);
  }  // the destructor stops the follower
  t.join();
  EXPECT_TRUE(got.ok()) << got;
  EXPECT_EQ(follower.polls.load(), 10);
  EXPECT_TRUE(f.ok()) << f;
}

TEST(RankGroupRunner, TheLeadersOwnErrorIsReturnedAsItWas) {
  FakeGroup g(2);
  PollingRunner follower(5, absl::OkStatus());
  absl::Status f;
  std::thread t([&] { f = RunGroupFollower(follower, *g.comms[1]); });
  absl::Status got;
  {
    GroupLeaderRunner leader(std::make_unique<PollingRunner>(2, absl::DataLossError("disk full")), *g.comms[0]);
    NullSink sink;
    got = leader.Run(RunnerJob(), sink);
  }
  t.join();
  EXPECT_EQ(got, absl::DataLossError("disk full"));
  EXPECT_EQ(follower.polls.load(), 3) << "the follower did not stop at the leader's failure";
  EXPECT_TRUE(f.ok()) << f;
}

// Runs until `together` jobs run at once on this rank and Release() was called (up to 10 s
// each), polls the agreement `checks` times, and records the slot each job had.
class SlotRunner : public JobRunner {
 public:
  SlotRunner(int together, int checks) : together_(together), checks_(checks) {}
  std::string name() const override { return "slots"; }
  std::vector<::magi::internal::v1::ModelInfo> Models() const override { return {}; }
  int max_concurrent_jobs() const override { return together_; }
  absl::Status Run(const RunnerJob& job, FrameSink& sink) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      slots.push_back(job.slot);
      ++running_;
      cv_.notify_all();
      if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return running_ >= together_; })) {
        return absl::DeadlineExceededError("the jobs did not run at once");
      }
      ran_together = true;
      if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return released_; })) {
        return absl::DeadlineExceededError("never released");
      }
    }
    for (int i = 0; i < checks_; ++i) {
      if (sink.Cancelled()) return absl::CancelledError("cancelled");
    }
    return absl::OkStatus();
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  std::mutex mu_;
  std::vector<int> slots;
  bool ran_together = false;

 private:
  std::condition_variable cv_;
  int running_ = 0;
  bool released_ = false;
  const int together_, checks_;
};

// --max_jobs_per_group 2 on a group of two ranks: two jobs run at once on both ranks, each in
// its slot on every rank over that slot's own channel (their agreements never meet in one
// collective sequence); a third job while both slots are busy is refused, naming the flag.
TEST(RankGroupRunner, TwoSlotsRunTwoJobsAtOnceOnEveryRankEachOverItsOwnChannel) {
  FakeGroup slot0(2), slot1(2);
  SlotRunner follower(2, 50);
  follower.Release();
  absl::Status f;
  std::thread t([&] { f = RunGroupFollower(follower, {slot0.comms[1].get(), slot1.comms[1].get()}); });
  auto leader_inner = std::make_unique<SlotRunner>(2, 50);
  SlotRunner* leader_runner = leader_inner.get();
  absl::Status a, b, third;
  std::vector<int> leader_slots;
  bool leader_together = false;
  {
    GroupLeaderRunner leader(std::move(leader_inner), {slot0.comms[0].get(), slot1.comms[0].get()});
    EXPECT_EQ(leader.max_concurrent_jobs(), 2);
    NullSink sink;
    std::thread ja([&] { a = leader.Run(RunnerJob(), sink); });
    std::thread jb([&] { b = leader.Run(RunnerJob(), sink); });
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard<std::mutex> lock(leader_runner->mu_);
        if (leader_runner->slots.size() == 2) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    third = leader.Run(RunnerJob(), sink);
    leader_runner->Release();
    ja.join();
    jb.join();
    leader_slots = leader_runner->slots;
    leader_together = leader_runner->ran_together;
  }  // the destructor stops the follower's loops (and frees the leader's runner)
  t.join();
  EXPECT_TRUE(a.ok()) << a;
  EXPECT_TRUE(b.ok()) << b;
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted) << third;
  EXPECT_NE(third.message().find("--max_jobs_per_group"), std::string::npos) << third;
  EXPECT_TRUE(f.ok()) << f;
  for (auto [slots, together] : {std::make_pair(leader_slots, leader_together),
                                  std::make_pair(follower.slots, follower.ran_together)}) {
    std::sort(slots.begin(), slots.end());
    EXPECT_EQ(slots, (std::vector<int>{0, 1}));
    EXPECT_TRUE(together);
  }
}

}  // namespace
}  // namespace magi
