// JobFeed against a real JobStore: replay order and the init segment, live fan-out, a
// flow-controlled watcher held at its window (memory bounded however many do not read),
// a slow reader receiving every byte, coalesced progress, watcher caps and prompt release.
#include "server/job_feed.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

namespace magi {
namespace {

namespace fs = std::filesystem;
using ::magi::v1::GenerateEvent;

// An in-process subscriber without flow control.
class PlainSubscriber final : public JobSubscriber {
 public:
  void OnEvent(const GenerateEvent& e) override { events.push_back(e); }
  void OnClose(const absl::Status& s) override {
    closed = true;
    status = s;
  }
  std::vector<GenerateEvent> events;
  bool closed = false;
  absl::Status status;
};

// A client stream whose reader writes only when told to (Consume), like a slow or stuck client.
class FlowSubscriber final : public JobSubscriber {
 public:
  bool EnableFlowControl(std::function<void()> written) override {
    std::lock_guard<std::mutex> lock(mu);
    written_ = std::move(written);
    return true;
  }
  void OnEvent(const GenerateEvent& e) override {
    std::lock_guard<std::mutex> lock(mu);
    pending.push_back(e);
    cv.notify_all();
  }
  void OnClose(const absl::Status& s) override {
    std::lock_guard<std::mutex> lock(mu);
    closed = true;
    status = s;
    cv.notify_all();
  }
  // Writes one pending event to the "client" (waits up to 5 s for one); false if none came.
  bool Consume() {
    std::function<void()> written;
    {
      std::unique_lock<std::mutex> lock(mu);
      if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return !pending.empty(); })) return false;
      received.push_back(pending.front());
      pending.pop_front();
      written = written_;
    }
    written();
    return true;
  }
  size_t Pending() {
    std::lock_guard<std::mutex> lock(mu);
    return pending.size();
  }
  bool WaitClosed() {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5), [&] { return closed && pending.empty(); });
  }
  std::mutex mu;
  std::condition_variable cv;
  std::deque<GenerateEvent> pending;
  std::vector<GenerateEvent> received;
  bool closed = false;
  absl::Status status;

 private:
  std::function<void()> written_;
};

GenerateEvent Progress(int chunks_done) {
  GenerateEvent e;
  e.mutable_progress()->set_chunks_done(chunks_done);
  return e;
}

GenerateEvent Completed(const std::string& id) {
  GenerateEvent e;
  e.mutable_completed()->set_job_id(id);
  return e;
}

class JobFeedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("magi-feed-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto store = JobStore::Open(dir_.string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  void TearDown() override {
    feed_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  void MakeFeed(JobFeedOptions o) { feed_ = std::make_unique<JobFeed>(store_.get(), o, nullptr); }
  // Stores a job with `n` chunks of `bytes` each; returns its chunk rows.
  std::vector<ChunkRecord> StoreJob(const std::string& id, int n, size_t bytes) {
    JobRecord rec;
    rec.job_id = id;
    rec.chunks_total = n;
    rec.request.add_prompts()->set_text("x");
    EXPECT_TRUE(store_->Insert(&rec).ok());
    std::vector<ChunkRecord> out;
    for (int i = 0; i < n; ++i) {
      std::string frag(bytes, static_cast<char>('a' + i));
      ChunkRecord c{i, i * 24, i * 24 + 24, static_cast<int64_t>(frag.size())};
      EXPECT_TRUE(store_->PutChunk(id, c, i == 0 ? "INIT" : "", frag).ok());
      out.push_back(c);
    }
    return out;
  }

  fs::path dir_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<JobFeed> feed_;
};

TEST_F(JobFeedTest, ReplaysStoredChunksWithInitThenProgressThenLiveThenFinal) {
  MakeFeed({});
  auto chunks = StoreJob("j", 2, 3);
  feed_->Open("j", 3, chunks, "INIT");
  auto sub = std::make_shared<PlainSubscriber>();
  GenerateEvent first;
  first.mutable_accepted()->set_job_id("j");
  ASSERT_TRUE(feed_->Attach("j", 0, sub, first, Progress(2)).ok());
  feed_->Replay(sub.get());
  ASSERT_EQ(sub->events.size(), 4u);
  EXPECT_TRUE(sub->events[0].has_accepted());
  EXPECT_EQ(sub->events[1].chunk().index(), 0);
  EXPECT_EQ(sub->events[1].chunk().init_segment(), "INIT");
  EXPECT_EQ(sub->events[1].chunk().fragment(), "aaa");
  EXPECT_EQ(sub->events[2].chunk().index(), 1);
  EXPECT_EQ(sub->events[2].chunk().init_segment(), "");
  EXPECT_EQ(sub->events[2].chunk().chunks_total(), 3);
  EXPECT_TRUE(sub->events[3].has_progress());
  feed_->PublishChunk("j", ChunkRecord{2, 48, 72, 2}, "", "cc");
  ASSERT_EQ(sub->events.size(), 5u);
  EXPECT_EQ(sub->events[4].chunk().fragment(), "cc");
  feed_->Finish("j", Completed("j"), absl::OkStatus());
  EXPECT_TRUE(sub->events.back().has_completed());
  EXPECT_TRUE(sub->closed && sub->status.ok());
  EXPECT_EQ(feed_->watchers(), 0);
}

TEST_F(JobFeedTest, FromAChunkAfterTheFirstTheFirstSentCarriesTheInitSegment) {
  MakeFeed({});
  auto chunks = StoreJob("j", 3, 4);
  auto sub = std::make_shared<PlainSubscriber>();
  ASSERT_TRUE(feed_->AttachFinished("j", 3, chunks, Completed("j"), absl::OkStatus(), 2, sub, std::nullopt).ok());
  feed_->Replay(sub.get());
  ASSERT_EQ(sub->events.size(), 2u);
  EXPECT_EQ(sub->events[0].chunk().index(), 2);
  EXPECT_EQ(sub->events[0].chunk().init_segment(), "INIT");
  EXPECT_TRUE(sub->events[1].has_completed());
  EXPECT_TRUE(sub->closed);
}

TEST_F(JobFeedTest, AWatcherThatDoesNotReadIsHeldAtItsWindowAndASlowOneGetsEveryByte) {
  JobFeedOptions o;
  o.window_bytes = 150 << 10;
  MakeFeed(o);
  const size_t kChunk = 100 << 10;
  auto chunks = StoreJob("j", 8, kChunk);
  auto stuck = std::make_shared<FlowSubscriber>();
  auto slow = std::make_shared<FlowSubscriber>();
  for (auto& s : {stuck, slow}) {
    ASSERT_TRUE(feed_->AttachFinished("j", 8, chunks, Completed("j"), absl::OkStatus(), 0, s, std::nullopt).ok());
    feed_->Replay(s.get());
  }
  // 100 KiB < 150 KiB: a second chunk fits, a third does not.
  EXPECT_EQ(stuck->Pending(), 2u);
  EXPECT_EQ(slow->Pending(), 2u);
  const int64_t held = feed_->bytes_held();
  EXPECT_GE(held, 4 * static_cast<int64_t>(kChunk));
  EXPECT_LE(held, 2 * (o.window_bytes + static_cast<int64_t>(kChunk) + 1024));
  // The slow reader drains, one event at a time.
  std::string video;
  while (slow->Consume()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_TRUE(slow->WaitClosed());
  EXPECT_TRUE(slow->status.ok());
  ASSERT_EQ(slow->received.size(), 9u);
  for (const auto& e : slow->received) {
    if (e.has_chunk()) video += e.chunk().init_segment() + e.chunk().fragment();
  }
  EXPECT_TRUE(slow->received.back().has_completed());
  EXPECT_EQ(video, *store_->ReadVideoPrefix("j", 8));
  // The stuck one still holds its window only.
  EXPECT_EQ(stuck->Pending(), 2u);
  EXPECT_LE(feed_->bytes_held(), o.window_bytes + static_cast<int64_t>(kChunk) + 1024);
  feed_->Detach(stuck.get());
  EXPECT_EQ(feed_->bytes_held(), 0);
  EXPECT_EQ(feed_->watchers(), 0);
}

TEST_F(JobFeedTest, ManyUnreadWatchersOfAFinishedJobHoldAWindowEachNotTheVideo) {
  JobFeedOptions o;
  o.window_bytes = 64 << 10;
  MakeFeed(o);
  const int kChunks = 8;
  const size_t kChunk = 128 << 10;  // a 1 MiB video
  auto chunks = StoreJob("j", kChunks, kChunk);
  const int kWatchers = 150;
  std::vector<std::shared_ptr<FlowSubscriber>> subs;
  for (int i = 0; i < kWatchers; ++i) {
    subs.push_back(std::make_shared<FlowSubscriber>());
    ASSERT_TRUE(feed_->AttachFinished("j", kChunks, chunks, Completed("j"), absl::OkStatus(), 0, subs.back(),
                                      std::nullopt).ok());
    feed_->Replay(subs.back().get());
  }
  const int64_t video = kChunks * static_cast<int64_t>(kChunk);
  const int64_t held = feed_->bytes_held();
  std::printf("feed: %d unread watchers of a %lld-byte video hold %lld bytes (%.1f%% of %lld if each held it all)\n",
              kWatchers, static_cast<long long>(video), static_cast<long long>(held),
              100.0 * held / (kWatchers * video), static_cast<long long>(kWatchers * video));
  EXPECT_LE(held, kWatchers * (o.window_bytes + static_cast<int64_t>(kChunk) + 1024));
  EXPECT_LT(held, kWatchers * video / 4);
  for (auto& s : subs) EXPECT_EQ(s->Pending(), 1u);  // one 128 KiB chunk fills a 64 KiB window
  for (auto& s : subs) feed_->Detach(s.get());
  EXPECT_EQ(feed_->bytes_held(), 0);
  EXPECT_EQ(feed_->watchers(), 0);
  EXPECT_FALSE(feed_->HasWatchers("j"));
}

TEST_F(JobFeedTest, ALaggingWatcherGetsChunksFromDiskAndTheLatestProgressInPlace) {
  JobFeedOptions o;
  o.window_bytes = 1;  // one event at a time
  MakeFeed(o);
  JobRecord rec;
  rec.job_id = "j";
  rec.chunks_total = 3;
  ASSERT_TRUE(store_->Insert(&rec).ok());
  feed_->Open("j", 3, {}, "");
  auto sub = std::make_shared<FlowSubscriber>();
  ASSERT_TRUE(feed_->Attach("j", 0, sub, std::nullopt, Progress(0)).ok());
  feed_->Replay(sub.get());
  ASSERT_EQ(sub->Pending(), 1u);  // the attach progress; the window is now full
  for (int i = 0; i < 2; ++i) {
    ChunkRecord c{i, i * 24, i * 24 + 24, 2};
    std::string frag = "F" + std::to_string(i);
    ASSERT_TRUE(store_->PutChunk("j", c, i == 0 ? "INIT" : "", frag).ok());
    feed_->PublishProgress("j", Progress(i));
    feed_->PublishChunk("j", c, i == 0 ? "INIT" : "", frag);
  }
  feed_->PublishProgress("j", Progress(2));  // replaces the older pending progress
  feed_->Finish("j", Completed("j"), absl::OkStatus());
  EXPECT_EQ(sub->Pending(), 1u);
  while (sub->Consume()) {
  }
  ASSERT_TRUE(sub->WaitClosed());
  std::vector<std::string> kinds;
  for (const auto& e : sub->received) {
    kinds.push_back(e.has_chunk() ? "chunk" + std::to_string(e.chunk().index())
                    : e.has_progress() ? "progress" + std::to_string(e.progress().chunks_done())
                                       : "final");
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"progress0", "chunk0", "chunk1", "progress2", "final"}));
  EXPECT_EQ(sub->received[1].chunk().init_segment(), "INIT");
  EXPECT_EQ(sub->received[2].chunk().fragment(), "F1");
}

TEST_F(JobFeedTest, WatcherCapsAreResourceExhaustedAndDetachIsIdempotent) {
  JobFeedOptions o;
  o.max_watchers_per_job = 2;
  o.max_watchers = 3;
  MakeFeed(o);
  feed_->Open("a", 1, {}, "");
  feed_->Open("b", 1, {}, "");
  std::vector<std::shared_ptr<PlainSubscriber>> subs;
  for (int i = 0; i < 5; ++i) subs.push_back(std::make_shared<PlainSubscriber>());
  EXPECT_TRUE(feed_->Attach("a", 0, subs[0], std::nullopt, std::nullopt).ok());
  EXPECT_TRUE(feed_->Attach("a", 0, subs[1], std::nullopt, std::nullopt).ok());
  absl::Status s = feed_->Attach("a", 0, subs[2], std::nullopt, std::nullopt);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_NE(s.message().find("per job"), std::string::npos) << s;
  EXPECT_TRUE(feed_->Attach("b", 0, subs[2], std::nullopt, std::nullopt).ok());
  s = feed_->Attach("b", 0, subs[3], std::nullopt, std::nullopt);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_TRUE(absl::IsNotFound(feed_->Attach("nope", 0, subs[4], std::nullopt, std::nullopt)));
  feed_->Detach(subs[0].get());
  feed_->Detach(subs[0].get());
  EXPECT_EQ(feed_->watchers(), 2);
  feed_->CloseAll(absl::UnavailableError("shutting down"));
  EXPECT_TRUE(subs[1]->closed && absl::IsUnavailable(subs[1]->status));
  EXPECT_FALSE(subs[0]->closed);
  EXPECT_EQ(feed_->watchers(), 0);
}

TEST_F(JobFeedTest, AMissingFragmentEndsTheStreamWithDataLoss) {
  MakeFeed({});
  auto chunks = StoreJob("j", 2, 4);
  chunks.push_back(ChunkRecord{2, 48, 72, 4});  // counted but never stored
  auto sub = std::make_shared<PlainSubscriber>();
  ASSERT_TRUE(feed_->AttachFinished("j", 3, chunks, Completed("j"), absl::OkStatus(), 0, sub, std::nullopt).ok());
  feed_->Replay(sub.get());
  EXPECT_EQ(sub->events.size(), 2u);
  EXPECT_TRUE(sub->closed);
  EXPECT_TRUE(absl::IsDataLoss(sub->status)) << sub->status;
  EXPECT_EQ(feed_->watchers(), 0);
}

}  // namespace
}  // namespace magi
