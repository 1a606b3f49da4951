#include "server/job_store.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace magi {
namespace {

namespace fs = std::filesystem;

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("magi-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  JobRecord Record(const std::string& id, const std::string& key = "") {
    JobRecord r;
    r.job_id = id;
    r.request.add_prompts()->set_text("a cat");
    r.request.set_image(std::string("\x89PNG image bytes", 16));
    r.request.set_idempotency_key(key);
    r.chunks_total = 3;
    r.created_ms = 1000;
    return r;
  }

  fs::path dir_;
};

TEST_F(JobStoreTest, InsertedJobsSurviveReopen) {
  {
    auto store = JobStore::Open(dir_.string());
    ASSERT_TRUE(store.ok()) << store.status();
    JobRecord a = Record("a");
    ASSERT_TRUE((*store)->Insert(&a).ok());
    EXPECT_GT(a.seq, 0);
    a.state = ::magi::v1::JOB_STATE_RUNNING;
    a.attempts = 1;
    ASSERT_TRUE((*store)->Update(a).ok());
  }
  auto store = JobStore::Open(dir_.string());
  ASSERT_TRUE(store.ok());
  auto got = (*store)->Get("a");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->state, ::magi::v1::JOB_STATE_RUNNING);
  EXPECT_EQ((*got)->request.image().size(), 16u);  // media bytes persisted for resume
  EXPECT_EQ((*got)->ToJob().request().image(), "");  // but never echoed
  auto unfinished = (*store)->LoadUnfinished();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_FALSE((*store)->Get("nope")->has_value());
}

TEST_F(JobStoreTest, IdempotencyKeyIsUnique) {
  auto store = *JobStore::Open(dir_.string());
  JobRecord a = Record("a", "key"), b = Record("b", "key"), c = Record("c"), d = Record("d");
  ASSERT_TRUE(store->Insert(&a).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(store->Insert(&b)));
  ASSERT_TRUE(store->Insert(&c).ok());  // empty keys do not collide
  ASSERT_TRUE(store->Insert(&d).ok());
  auto found = store->FindByIdempotencyKey("key");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->job_id, "a");
}

TEST_F(JobStoreTest, ChunksAndFinalVideo) {
  auto store = *JobStore::Open(dir_.string());
  JobRecord a = Record("a");
  ASSERT_TRUE(store->Insert(&a).ok());
  ASSERT_TRUE(store->PutChunk("a", {0, 0, 24, 0}, "INIT", "F0").ok());
  ASSERT_TRUE(store->PutChunk("a", {1, 24, 48, 0}, "", "F1").ok());
  EXPECT_EQ((*store->Get("a"))->chunks_done, 2);
  auto chunks = store->Chunks("a");
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 2u);
  EXPECT_EQ((*chunks)[1].frame_begin, 24);
  EXPECT_EQ((*chunks)[1].bytes, 2);
  EXPECT_EQ(*store->ReadVideoPrefix("a", 1), "INITF0");
  auto bytes = store->WriteFinalVideo("a", 2);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, 8);
  EXPECT_EQ(*ReadWholeFile(store->VideoPath("a")), "INITF0F1");
  EXPECT_TRUE(absl::IsNotFound(store->ReadFragment("a", 7).status()));
}

TEST_F(JobStoreTest, ListPagesNewestFirstAndFiltersByState) {
  auto store = *JobStore::Open(dir_.string());
  for (int i = 0; i < 5; ++i) {
    JobRecord r = Record("j" + std::to_string(i));
    if (i % 2) r.state = ::magi::v1::JOB_STATE_SUCCEEDED;
    ASSERT_TRUE(store->Insert(&r).ok());
  }
  auto p1 = store->List(::magi::v1::JOB_STATE_UNSPECIFIED, 2, "");
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->jobs.size(), 2u);
  EXPECT_EQ(p1->jobs[0].job_id, "j4");
  auto p2 = store->List(::magi::v1::JOB_STATE_UNSPECIFIED, 2, p1->next_page_token);
  EXPECT_EQ(p2->jobs[0].job_id, "j2");
  auto p3 = store->List(::magi::v1::JOB_STATE_UNSPECIFIED, 2, p2->next_page_token);
  EXPECT_EQ(p3->jobs.size(), 1u);
  EXPECT_TRUE(p3->next_page_token.empty());
  auto done = store->List(::magi::v1::JOB_STATE_SUCCEEDED, 10, "");
  EXPECT_EQ(done->jobs.size(), 2u);
  auto bad = store->List(::magi::v1::JOB_STATE_UNSPECIFIED, 2, "xyz");
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_NE(bad.status().message().find("page_token"), std::string::npos);
}

TEST_F(JobStoreTest, RetentionDeletesOldestFinishedJobsOnly) {
  auto store = *JobStore::Open(dir_.string());
  for (int i = 0; i < 4; ++i) {
    JobRecord r = Record("j" + std::to_string(i));
    r.state = i == 0 ? ::magi::v1::JOB_STATE_QUEUED : ::magi::v1::JOB_STATE_SUCCEEDED;
    r.finished_ms = 100 * i;
    ASSERT_TRUE(store->Insert(&r).ok());
    ASSERT_TRUE(store->PutChunk(r.job_id, {0, 0, 1, 0}, "I", "F").ok());
  }
  auto expired = store->ExpiredJobs(/*keep=*/1, 0);
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(*expired, (std::vector<std::string>{"j1", "j2"}));
  auto by_age = store->ExpiredJobs(10, /*finished_before_ms=*/250);
  EXPECT_EQ(*by_age, (std::vector<std::string>{"j1", "j2"}));
  ASSERT_TRUE(store->Delete("j1").ok());
  EXPECT_FALSE(store->Get("j1")->has_value());
  EXPECT_FALSE(fs::exists(dir_ / "jobs" / "j1"));
  EXPECT_TRUE(fs::exists(dir_ / "jobs" / "j0"));
}

TEST_F(JobStoreTest, UnwritableStateDirIsAClearError) {
  auto store = JobStore::Open("/proc/magi-cannot-write-here");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("--state-dir"), std::string::npos) << store.status();
}

}  // namespace
}  // namespace magi
