#include "server/scheduler.h"

#include <gtest/gtest.h>

namespace magi {
namespace {

QueuedJob Job(const std::string& id, int priority, int64_t seq, const std::string& model = "tiny",
              int size = 64) {
  return QueuedJob{id, priority, seq, model, size, size};
}

TEST(SchedulerTest, HigherPriorityFirstThenFifo) {
  Scheduler s(10);
  ASSERT_TRUE(s.Enqueue(Job("a", 0, 1)).ok());
  ASSERT_TRUE(s.Enqueue(Job("b", 5, 2)).ok());
  ASSERT_TRUE(s.Enqueue(Job("c", 0, 3)).ok());
  ASSERT_TRUE(s.Enqueue(Job("d", 5, 4)).ok());
  EXPECT_EQ(s.Ids(), (std::vector<std::string>{"b", "d", "a", "c"}));
  EXPECT_EQ(s.Position("a"), 2);
  EXPECT_EQ(s.Position("zzz"), -1);
  auto any = [](const QueuedJob&) { return true; };
  EXPECT_EQ(s.PopFirst(any)->job_id, "b");
  EXPECT_EQ(s.PopFirst(any)->job_id, "d");
  EXPECT_EQ(s.PopFirst(any)->job_id, "a");
  EXPECT_EQ(s.PopFirst(any)->job_id, "c");
  EXPECT_FALSE(s.PopFirst(any).has_value());
}

TEST(SchedulerTest, CapacityIsAdmissionControlButRequeueBypassesIt) {
  Scheduler s(2);
  ASSERT_TRUE(s.Enqueue(Job("a", 0, 1)).ok());
  ASSERT_TRUE(s.Enqueue(Job("b", 0, 2)).ok());
  absl::Status full = s.Enqueue(Job("c", 0, 3));
  EXPECT_TRUE(absl::IsResourceExhausted(full)) << full;
  EXPECT_NE(full.message().find("capacity 2"), std::string::npos);
  EXPECT_TRUE(s.Enqueue(Job("r", 0, 0), /*bypass_capacity=*/true).ok());
  EXPECT_EQ(s.Ids().front(), "r");  // an old sequence number goes back to the front
  EXPECT_TRUE(absl::IsAlreadyExists(s.Enqueue(Job("a", 0, 1), true)));
}

TEST(SchedulerTest, PopFirstSkipsJobsTheGroupCannotRun) {
  Scheduler s(10);
  ASSERT_TRUE(s.Enqueue(Job("big", 9, 1, "tiny", 1024)).ok());
  ASSERT_TRUE(s.Enqueue(Job("other", 9, 2, "large")).ok());
  ASSERT_TRUE(s.Enqueue(Job("small", 0, 3)).ok());
  auto small_tiny = [](const QueuedJob& q) { return q.model == "tiny" && q.width <= 256; };
  EXPECT_EQ(s.PopFirst(small_tiny)->job_id, "small");
  EXPECT_FALSE(s.PopFirst(small_tiny).has_value());
  EXPECT_EQ(s.size(), 2u);
  EXPECT_TRUE(s.Remove("big"));
  EXPECT_FALSE(s.Remove("big"));
  EXPECT_EQ(s.Ids(), (std::vector<std::string>{"other"}));
}

}  // namespace
}  // namespace magi
