#include "server/job_store.h"

#include <gtest/gtest.h>

#include <sqlite3.h>

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

// One server per state dir: a second store on it is refused while the first is open (and
// names the dir), and opens once the first is closed.
TEST_F(JobStoreTest, AStateDirIsOpenedByOneStoreAtATime) {
  auto first = JobStore::Open(dir_.string());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = JobStore::Open(dir_.string());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use by another magi-server"), absl::string_view::npos)
      << second.status();
  EXPECT_NE(second.status().message().find(dir_.string()), absl::string_view::npos) << second.status();
  first->reset();
  auto third = JobStore::Open(dir_.string());
  EXPECT_TRUE(third.ok()) << third.status();
}

TEST_F(JobStoreTest, IdempotencyKeyIsUnique) {
  auto store = *JobStore::Open(dir_.string());
  JobRecord a = Record("a", "key"), b = Record("b", "key"), c = Record("c"), d = Record("d");
  ASSERT_TRUE(store->Insert(&a).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(store->Insert(&b)));
  ASSERT_TRUE(store->Insert(&c).ok());  // empty keys do not collide
  ASSERT_TRUE(store->Insert(&d).ok());
  auto found = store->FindByIdempotencyKey(magi::kAnonymousTenant, "key");
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
  auto p1 = store->List(magi::kAnonymousTenant, ::magi::v1::JOB_STATE_UNSPECIFIED, 2, "");
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->jobs.size(), 2u);
  EXPECT_EQ(p1->jobs[0].job_id, "j4");
  auto p2 = store->List(magi::kAnonymousTenant, ::magi::v1::JOB_STATE_UNSPECIFIED, 2, p1->next_page_token);
  EXPECT_EQ(p2->jobs[0].job_id, "j2");
  auto p3 = store->List(magi::kAnonymousTenant, ::magi::v1::JOB_STATE_UNSPECIFIED, 2, p2->next_page_token);
  EXPECT_EQ(p3->jobs.size(), 1u);
  EXPECT_TRUE(p3->next_page_token.empty());
  auto done = store->List(magi::kAnonymousTenant, ::magi::v1::JOB_STATE_SUCCEEDED, 10, "");
  EXPECT_EQ(done->jobs.size(), 2u);
  auto bad = store->List(magi::kAnonymousTenant, ::magi::v1::JOB_STATE_UNSPECIFIED, 2, "xyz");
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

namespace magi {
namespace {

TEST_F(JobStoreTest, TenantsOwnJobsAndKeys) {
  auto store = *JobStore::Open(dir_.string());
  JobRecord a = Record("a", "key"), b = Record("b", "key"), c = Record("c", "key");
  a.tenant = "alice";
  b.tenant = "bob";
  c.tenant = "alice";
  ASSERT_TRUE(store->Insert(&a).ok());
  ASSERT_TRUE(store->Insert(&b).ok());  // the same key, another tenant
  EXPECT_TRUE(absl::IsAlreadyExists(store->Insert(&c)));
  EXPECT_EQ((*store->FindByIdempotencyKey("bob", "key"))->job_id, "b");
  EXPECT_FALSE(store->FindByIdempotencyKey(kAnonymousTenant, "key")->has_value());
  EXPECT_EQ((*store->Get("a"))->tenant, "alice");
  auto alices = store->List("alice", ::magi::v1::JOB_STATE_UNSPECIFIED, 10, "");
  ASSERT_TRUE(alices.ok());
  ASSERT_EQ(alices->jobs.size(), 1u);
  EXPECT_EQ(alices->jobs[0].job_id, "a");
  EXPECT_TRUE(store->List("carol", ::magi::v1::JOB_STATE_UNSPECIFIED, 10, "")->jobs.empty());
}

// A database written before tenants existed (no tenant column, a global idempotency index)
// opens: its jobs belong to the anonymous tenant and keys become per tenant.
TEST_F(JobStoreTest, MigratesADatabaseFromBeforeTenants) {
  fs::create_directories(dir_);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "magi.db").string().c_str(), &db), SQLITE_OK);
  JobRecord old = Record("old", "k1");
  const std::string request = old.request.SerializeAsString();
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE jobs("
                         " seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE,"
                         " state INTEGER NOT NULL, priority INTEGER NOT NULL, request BLOB NOT NULL,"
                         " idempotency_key TEXT, created_ms INTEGER, started_ms INTEGER, finished_ms INTEGER,"
                         " deadline_ms INTEGER, chunks_done INTEGER, chunks_total INTEGER, attempts INTEGER,"
                         " error_code INTEGER, error_message TEXT, stats BLOB, video_bytes INTEGER);"
                         "CREATE UNIQUE INDEX jobs_idempotency ON jobs(idempotency_key)"
                         " WHERE idempotency_key IS NOT NULL;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_stmt* ins = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "INSERT INTO jobs(job_id, state, priority, request, idempotency_key, created_ms,"
                               " started_ms, finished_ms, deadline_ms, chunks_done, chunks_total, attempts,"
                               " error_code, error_message, stats, video_bytes)"
                               " VALUES('old', 4, 0, ?, 'k1', 1000, 0, 0, 0, 0, 3, 0, 0, '', x'', 0)",
                               -1, &ins, nullptr),
            SQLITE_OK);
  sqlite3_bind_blob(ins, 1, request.data(), static_cast<int>(request.size()), SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(ins), SQLITE_DONE);
  sqlite3_finalize(ins);
  sqlite3_close(db);

  for (int open = 0; open < 2; ++open) {  // migrating twice is a no-op
    auto store = JobStore::Open(dir_.string());
    ASSERT_TRUE(store.ok()) << store.status();
    auto got = (*store)->Get("old");
    ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
    EXPECT_EQ((*got)->tenant, kAnonymousTenant);
    EXPECT_EQ((*(*store)->FindByIdempotencyKey(kAnonymousTenant, "k1"))->job_id, "old");
    EXPECT_EQ((*store)->List(kAnonymousTenant, ::magi::v1::JOB_STATE_UNSPECIFIED, 10, "")->jobs.size(),
              static_cast<size_t>(1 + open));
    JobRecord other = Record(open == 0 ? "new" : "new2", "k1");
    other.tenant = open == 0 ? "alice" : "bob";
    EXPECT_TRUE((*store)->Insert(&other).ok());  // the old global index is gone
    JobRecord clash = Record(open == 0 ? "x1" : "x2", "k1");
    EXPECT_TRUE(absl::IsAlreadyExists((*store)->Insert(&clash)));
    if (open == 0) {  // one more anonymous job for the second round's count
      JobRecord anon = Record("anon");
      ASSERT_TRUE((*store)->Insert(&anon).ok());
    }
  }
}

}  // namespace
}  // namespace magi
