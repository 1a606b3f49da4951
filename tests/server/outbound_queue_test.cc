// OutboundQueue: one write in flight, order kept, Finish exactly once after the queued
// messages, Abort drops what is queued, a broken write ends the stream, Detach silences it.
#include "server/outbound_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace magi {
namespace {

struct Recorder {
  std::vector<std::string> writes;
  std::vector<grpc::Status> finishes;
};

OutboundQueue<std::string> MakeQueue(Recorder* r) {
  return OutboundQueue<std::string>([r](const std::string* m) { r->writes.push_back(*m); },
                                    [r](const grpc::Status& s) { r->finishes.push_back(s); });
}

TEST(OutboundQueueTest, OneWriteInFlightInOrderThenFinishOnceAfterTheQueue) {
  Recorder r;
  auto q = MakeQueue(&r);
  q.Push("a");
  q.Push("b");
  q.Push("c");
  EXPECT_EQ(r.writes, (std::vector<std::string>{"a"}));
  EXPECT_EQ(q.pending(), 2u);
  q.Close(grpc::Status(grpc::StatusCode::NOT_FOUND, "x"));
  q.Push("ignored after close");
  q.WriteDone(true);
  q.WriteDone(true);
  EXPECT_TRUE(r.finishes.empty());
  q.WriteDone(true);
  EXPECT_EQ(r.writes, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(r.finishes.size(), 1u);
  EXPECT_EQ(r.finishes[0].error_code(), grpc::StatusCode::NOT_FOUND);
  q.Close(grpc::Status::OK);
  EXPECT_EQ(r.finishes.size(), 1u);
}

TEST(OutboundQueueTest, AbortDropsTheQueueAndFinishesWhenTheWriteInFlightReturns) {
  Recorder r;
  auto q = MakeQueue(&r);
  q.Push("a");
  q.Push("b");
  q.Abort(grpc::Status(grpc::StatusCode::CANCELLED, "gone"));
  EXPECT_EQ(q.pending(), 0u);
  EXPECT_TRUE(r.finishes.empty());  // "a" is still being written
  q.WriteDone(false);
  EXPECT_EQ(r.writes, (std::vector<std::string>{"a"}));
  ASSERT_EQ(r.finishes.size(), 1u);
  EXPECT_EQ(r.finishes[0].error_code(), grpc::StatusCode::CANCELLED);
}

TEST(OutboundQueueTest, ABrokenWriteEndsTheStreamCancelled) {
  Recorder r;
  auto q = MakeQueue(&r);
  q.Push("a");
  q.Push("b");
  q.WriteDone(false);
  EXPECT_EQ(r.writes, (std::vector<std::string>{"a"}));
  ASSERT_EQ(r.finishes.size(), 1u);
  EXPECT_EQ(r.finishes[0].error_code(), grpc::StatusCode::CANCELLED);
}

TEST(OutboundQueueTest, AfterDetachNothingReachesTheReactor) {
  Recorder r;
  auto q = MakeQueue(&r);
  q.Push("a");
  q.Detach();
  q.Push("b");
  q.Close(grpc::Status::OK);
  q.WriteDone(true);
  EXPECT_EQ(r.writes, (std::vector<std::string>{"a"}));
  EXPECT_TRUE(r.finishes.empty());
  EXPECT_EQ(q.pending(), 0u);
}

}  // namespace
}  // namespace magi
