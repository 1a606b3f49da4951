#include "server/job_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  absl::Status status(const char* what) const {
    if (rc_ == SQLITE_OK) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("job store: preparing ", what, ": ", sqlite3_errmsg(db_)));
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Bind(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindText(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindNull(int i) { sqlite3_bind_null(stmt_, i); }
  int Step() { return sqlite3_step(stmt_); }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), n) : std::string();
  }
  sqlite3_stmt* get() { return stmt_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

constexpr const char* kColumns =
    "seq, job_id, state, request, created_ms, started_ms, finished_ms, chunks_done, "
    "chunks_total, attempts, error_code, error_message, stats, video_bytes, tenant, submitted_prompts";

absl::StatusOr<JobRecord> ReadRecord(Stmt& s) {
  JobRecord r;
  r.seq = s.Int(0);
  r.job_id = s.Blob(1);
  r.state = static_cast<::magi::v1::JobState>(s.Int(2));
  if (!r.request.ParseFromString(s.Blob(3))) {
    return absl::DataLossError(absl::StrCat("job store: request of job ", r.job_id, " is corrupt"));
  }
  r.created_ms = s.Int(4);
  r.started_ms = s.Int(5);
  r.finished_ms = s.Int(6);
  r.chunks_done = static_cast<int>(s.Int(7));
  r.chunks_total = static_cast<int>(s.Int(8));
  r.attempts = static_cast<int>(s.Int(9));
  r.error_code = static_cast<int>(s.Int(10));
  r.error_message = s.Blob(11);
  r.stats.ParseFromString(s.Blob(12));
  r.video_bytes = s.Int(13);
  r.tenant = s.Blob(14);
  if (const std::string submitted = s.Blob(15); !submitted.empty()) {
    r.submitted_prompts.emplace();
    if (!r.submitted_prompts->ParseFromString(submitted)) {
      return absl::DataLossError(absl::StrCat("job store: submitted prompts of job ", r.job_id, " are corrupt"));
    }
  }
  return r;
}

absl::Status SqlError(sqlite3* db, const std::string& what) {
  return absl::InternalError(absl::StrCat("job store: ", what, ": ", sqlite3_errmsg(db)));
}

std::string FragmentName(int index) { return absl::StrFormat("chunk-%05d.m4s", index); }

}  // namespace

::magi::v1::Job JobRecord::ToJob() const {
  ::magi::v1::Job job;
  job.set_job_id(job_id);
  job.set_state(state);
  *job.mutable_request() = request;
  job.mutable_request()->clear_image();
  job.mutable_request()->clear_prefix_video();
  job.set_chunks_done(chunks_done);
  job.set_chunks_total(chunks_total);
  job.set_queue_position(-1);
  job.set_created_unix_ms(created_ms);
  job.set_started_unix_ms(started_ms);
  job.set_finished_unix_ms(finished_ms);
  job.set_error_code(error_code);
  job.set_error_message(error_message);
  *job.mutable_stats() = stats;
  job.set_attempts(attempts);
  job.set_video_bytes(video_bytes);
  return job;
}

absl::Status WriteFileDurably(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(e)));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return absl::InternalError(absl::StrCat("cannot sync ", tmp, ": ", std::strerror(errno)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot read ", path, ": ", std::strerror(e)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& state_dir) {
  std::error_code ec;
  fs::create_directories(fs::path(state_dir) / "jobs", ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("--state-dir '", state_dir, "': cannot create: ", ec.message()));
  }
  std::unique_ptr<JobStore> store(new JobStore(state_dir));
  // One writer per state dir: a second server on it would hand out the same jobs twice.
  // O_CLOEXEC: the worker processes the server starts must not keep the lock after it dies.
  const std::string lock_path = (fs::path(state_dir) / "LOCK").string();
  store->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (store->lock_fd_ < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--state-dir '", state_dir, "': cannot open ", lock_path, ": ",
                                                   std::strerror(errno)));
  }
  if (::flock(store->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("--state-dir '", state_dir,
                                                      "' is in use by another magi-server (", lock_path,
                                                      " is locked); give each server its own state dir"));
  }
  std::string db_path = (fs::path(state_dir) / "magi.db").string();
  if (sqlite3_open_v2(db_path.c_str(), &store->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    return absl::InvalidArgumentError(absl::StrCat("job store ", db_path, ": cannot open: ",
                                                   store->db_ ? sqlite3_errmsg(store->db_) : "?"));
  }
  sqlite3_busy_timeout(store->db_, 5000);
  for (const char* sql : {
           "PRAGMA journal_mode=WAL",
           "PRAGMA synchronous=FULL",
           "CREATE TABLE IF NOT EXISTS jobs("
           " seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE,"
           " state INTEGER NOT NULL, priority INTEGER NOT NULL, request BLOB NOT NULL,"
           " idempotency_key TEXT, created_ms INTEGER, started_ms INTEGER, finished_ms INTEGER,"
           " deadline_ms INTEGER, chunks_done INTEGER, chunks_total INTEGER, attempts INTEGER,"
           " error_code INTEGER, error_message TEXT, stats BLOB, video_bytes INTEGER)",
           "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq)",
           "CREATE TABLE IF NOT EXISTS chunks(job_id TEXT NOT NULL, idx INTEGER NOT NULL,"
           " frame_begin INTEGER, frame_end INTEGER, bytes INTEGER, PRIMARY KEY(job_id, idx))",
       }) {
    if (auto s = store->Exec(sql); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(db_path, ": ", s.message()));
    }
  }
  if (auto s = store->MigrateTenants(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(db_path, ": ", s.message()));
  }
  return store;
}

JobStore::~JobStore() {
  if (db_) sqlite3_close_v2(db_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

absl::Status JobStore::MigrateTenants() {
  // A database from before tenants has no tenant column: add it (existing jobs belong to the
  // anonymous tenant) and make idempotency keys unique per tenant instead of globally.
  bool has_tenant = false, has_submitted_prompts = false;
  {
    Stmt s(db_, "PRAGMA table_info(jobs)");
    MAGI_RETURN_IF_ERROR(s.status("table_info"));
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      if (s.Blob(1) == "tenant") has_tenant = true;
      if (s.Blob(1) == "submitted_prompts") has_submitted_prompts = true;
    }
    if (rc != SQLITE_DONE) return SqlError(db_, "table_info(jobs)");
  }
  if (!has_tenant) {
    MAGI_RETURN_IF_ERROR(Exec("ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT ''"));
  }
  // Live prompt changes: the prompts as submitted, once a change replaced some (empty: none).
  if (!has_submitted_prompts) {
    MAGI_RETURN_IF_ERROR(Exec("ALTER TABLE jobs ADD COLUMN submitted_prompts BLOB NOT NULL DEFAULT x''"));
  }
  for (const char* sql : {
           "DROP INDEX IF EXISTS jobs_idempotency",
           "CREATE UNIQUE INDEX IF NOT EXISTS jobs_tenant_idempotency ON jobs(tenant, idempotency_key)"
           " WHERE idempotency_key IS NOT NULL",
           "CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs(tenant, seq)",
       }) {
    MAGI_RETURN_IF_ERROR(Exec(sql));
  }
  return absl::OkStatus();
}

absl::Status JobStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("job store: ", msg, " (in: ", sql, ")"));
  }
  return absl::OkStatus();
}

std::string JobStore::JobDir(const std::string& job_id) const {
  return (fs::path(dir_) / "jobs" / job_id).string();
}

std::string JobStore::VideoPath(const std::string& job_id) const {
  return (fs::path(JobDir(job_id)) / "video.mp4").string();
}

absl::Status JobStore::Insert(JobRecord* r) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "INSERT INTO jobs(job_id, state, priority, request, idempotency_key, created_ms,"
         " started_ms, finished_ms, deadline_ms, chunks_done, chunks_total, attempts, error_code,"
         " error_message, stats, video_bytes, tenant) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  MAGI_RETURN_IF_ERROR(s.status("insert"));
  s.BindText(1, r->job_id);
  s.Bind(2, r->state);
  s.Bind(3, r->request.priority());
  s.Bind(4, r->request.SerializeAsString());
  if (r->request.idempotency_key().empty()) {
    s.BindNull(5);
  } else {
    s.BindText(5, r->request.idempotency_key());
  }
  s.Bind(6, r->created_ms);
  s.Bind(7, r->started_ms);
  s.Bind(8, r->finished_ms);
  s.Bind(9, r->request.deadline_unix_ms());
  s.Bind(10, r->chunks_done);
  s.Bind(11, r->chunks_total);
  s.Bind(12, r->attempts);
  s.Bind(13, r->error_code);
  s.BindText(14, r->error_message);
  s.Bind(15, r->stats.SerializeAsString());
  s.Bind(16, r->video_bytes);
  s.BindText(17, r->tenant);
  int rc = s.Step();
  if (rc == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError(absl::StrCat("job ", r->job_id, " or idempotency_key '",
                                                 r->request.idempotency_key(), "' exists"));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "insert job " + r->job_id);
  r->seq = sqlite3_last_insert_rowid(db_);
  return absl::OkStatus();
}

absl::Status JobStore::Update(const JobRecord& r) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "UPDATE jobs SET state=?, started_ms=?, finished_ms=?, chunks_done=?, chunks_total=?,"
         " attempts=?, error_code=?, error_message=?, stats=?, video_bytes=? WHERE job_id=?");
  MAGI_RETURN_IF_ERROR(s.status("update"));
  s.Bind(1, r.state);
  s.Bind(2, r.started_ms);
  s.Bind(3, r.finished_ms);
  s.Bind(4, r.chunks_done);
  s.Bind(5, r.chunks_total);
  s.Bind(6, r.attempts);
  s.Bind(7, r.error_code);
  s.BindText(8, r.error_message);
  s.Bind(9, r.stats.SerializeAsString());
  s.Bind(10, r.video_bytes);
  s.BindText(11, r.job_id);
  if (s.Step() != SQLITE_DONE) return SqlError(db_, "update job " + r.job_id);
  if (sqlite3_changes(db_) != 1) return absl::NotFoundError(absl::StrCat("job ", r.job_id, " not found"));
  if (r.submitted_prompts) {
    // Live prompt changes: the request as it now stands, with the submitted prompts beside it.
    Stmt q(db_, "UPDATE jobs SET request=?, submitted_prompts=? WHERE job_id=?");
    MAGI_RETURN_IF_ERROR(q.status("update request"));
    q.Bind(1, r.request.SerializeAsString());
    q.Bind(2, r.submitted_prompts->SerializeAsString());
    q.BindText(3, r.job_id);
    if (q.Step() != SQLITE_DONE) return SqlError(db_, "update request of job " + r.job_id);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<JobRecord>> JobStore::Get(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE job_id=?").c_str());
  MAGI_RETURN_IF_ERROR(s.status("get"));
  s.BindText(1, job_id);
  int rc = s.Step();
  if (rc == SQLITE_DONE) return std::optional<JobRecord>();
  if (rc != SQLITE_ROW) return SqlError(db_, "get job " + job_id);
  MAGI_ASSIGN_OR_RETURN(auto r, ReadRecord(s));
  return std::optional<JobRecord>(std::move(r));
}

absl::StatusOr<std::optional<JobRecord>> JobStore::FindByIdempotencyKey(const std::string& tenant,
                                                                     const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE tenant=? AND idempotency_key=?").c_str());
  MAGI_RETURN_IF_ERROR(s.status("find"));
  s.BindText(1, tenant);
  s.BindText(2, key);
  int rc = s.Step();
  if (rc == SQLITE_DONE) return std::optional<JobRecord>();
  if (rc != SQLITE_ROW) return SqlError(db_, "find idempotency key");
  MAGI_ASSIGN_OR_RETURN(auto r, ReadRecord(s));
  return std::optional<JobRecord>(std::move(r));
}

absl::StatusOr<std::vector<JobRecord>> JobStore::LoadUnfinished() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE state IN (?, ?) ORDER BY seq").c_str());
  MAGI_RETURN_IF_ERROR(s.status("load"));
  s.Bind(1, ::magi::v1::JOB_STATE_QUEUED);
  s.Bind(2, ::magi::v1::JOB_STATE_RUNNING);
  std::vector<JobRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    MAGI_ASSIGN_OR_RETURN(auto r, ReadRecord(s));
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "load unfinished jobs");
  return out;
}

absl::StatusOr<JobPage> JobStore::List(const std::string& tenant, ::magi::v1::JobState state, int page_size,
                                       const std::string& page_token) {
  int64_t before = INT64_MAX;
  if (!page_token.empty() && (!absl::SimpleAtoi(page_token, &before) || before <= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: '", page_token, "' is not a token returned by ListJobs"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql = absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE tenant = ? AND seq < ?",
                                 state == ::magi::v1::JOB_STATE_UNSPECIFIED ? "" : " AND state = ?",
                                 " ORDER BY seq DESC LIMIT ?");
  Stmt s(db_, sql.c_str());
  MAGI_RETURN_IF_ERROR(s.status("list"));
  int i = 1;
  s.BindText(i++, tenant);
  s.Bind(i++, before);
  if (state != ::magi::v1::JOB_STATE_UNSPECIFIED) s.Bind(i++, state);
  s.Bind(i++, page_size + 1);
  JobPage page;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    MAGI_ASSIGN_OR_RETURN(auto r, ReadRecord(s));
    page.jobs.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "list jobs");
  if (static_cast<int>(page.jobs.size()) > page_size) {
    page.jobs.pop_back();
    page.next_page_token = absl::StrCat(page.jobs.back().seq);
  }
  return page;
}

absl::Status JobStore::PutChunk(const std::string& job_id, const ChunkRecord& c,
                                const std::string& init_segment, const std::string& fragment) {
  std::string dir = JobDir(job_id);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  if (!init_segment.empty()) {
    MAGI_RETURN_IF_ERROR(WriteFileDurably((fs::path(dir) / "init.mp4").string(), init_segment));
  }
  if (auto s = WriteFileDurably((fs::path(dir) / FragmentName(c.index)).string(), fragment); !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  MAGI_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  {
    Stmt ins(db_, "INSERT OR REPLACE INTO chunks(job_id, idx, frame_begin, frame_end, bytes) VALUES(?,?,?,?,?)");
    if (auto st = ins.status("put chunk"); !st.ok()) {
      Exec("ROLLBACK").IgnoreError();  // the error returned is the one that matters
      return st;
    }
    ins.BindText(1, job_id);
    ins.Bind(2, c.index);
    ins.Bind(3, c.frame_begin);
    ins.Bind(4, c.frame_end);
    ins.Bind(5, static_cast<int64_t>(fragment.size()));
    if (ins.Step() != SQLITE_DONE) {
      auto err = SqlError(db_, "put chunk");
      Exec("ROLLBACK").IgnoreError();  // the error returned is the one that matters
      return err;
    }
    Stmt up(db_, "UPDATE jobs SET chunks_done=? WHERE job_id=?");
    up.Bind(1, c.index + 1);
    up.BindText(2, job_id);
    if (up.Step() != SQLITE_DONE) {
      auto err = SqlError(db_, "count chunk");
      Exec("ROLLBACK").IgnoreError();  // the error returned is the one that matters
      return err;
    }
  }
  return Exec("COMMIT");
}

absl::StatusOr<std::vector<ChunkRecord>> JobStore::Chunks(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "SELECT idx, frame_begin, frame_end, bytes FROM chunks WHERE job_id=? ORDER BY idx");
  MAGI_RETURN_IF_ERROR(s.status("chunks"));
  s.BindText(1, job_id);
  std::vector<ChunkRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    out.push_back(ChunkRecord{static_cast<int>(s.Int(0)), static_cast<int>(s.Int(1)),
                              static_cast<int>(s.Int(2)), s.Int(3)});
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "list chunks of " + job_id);
  return out;
}

absl::StatusOr<std::string> JobStore::ReadInitSegment(const std::string& job_id) {
  return ReadWholeFile((fs::path(JobDir(job_id)) / "init.mp4").string());
}

absl::StatusOr<std::string> JobStore::ReadFragment(const std::string& job_id, int index) {
  return ReadWholeFile((fs::path(JobDir(job_id)) / FragmentName(index)).string());
}

absl::StatusOr<std::string> JobStore::ReadVideoPrefix(const std::string& job_id, int count) {
  auto out = ReadInitSegment(job_id);
  if (!out.ok()) return out.status();
  for (int i = 0; i < count; ++i) {
    MAGI_ASSIGN_OR_RETURN(auto frag, ReadFragment(job_id, i));
    out->append(frag);
  }
  return out;
}

absl::StatusOr<int64_t> JobStore::WriteFinalVideo(const std::string& job_id, int chunks) {
  MAGI_ASSIGN_OR_RETURN(auto video, ReadVideoPrefix(job_id, chunks));
  MAGI_RETURN_IF_ERROR(WriteFileDurably(VideoPath(job_id), video));
  return static_cast<int64_t>(video.size());
}

absl::StatusOr<std::vector<std::string>> JobStore::ExpiredJobs(int keep, int64_t finished_before_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_,
         "SELECT job_id FROM jobs WHERE state IN (?,?,?) AND (seq NOT IN (SELECT seq FROM jobs"
         " WHERE state IN (?,?,?) ORDER BY seq DESC LIMIT ?) OR (? > 0 AND finished_ms < ?))");
  MAGI_RETURN_IF_ERROR(s.status("expired"));
  int i = 1;
  for (int rep = 0; rep < 2; ++rep) {
    s.Bind(i++, ::magi::v1::JOB_STATE_SUCCEEDED);
    s.Bind(i++, ::magi::v1::JOB_STATE_FAILED);
    s.Bind(i++, ::magi::v1::JOB_STATE_CANCELLED);
  }
  s.Bind(i++, keep);
  s.Bind(i++, finished_before_ms);
  s.Bind(i++, finished_before_ms);
  std::vector<std::string> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(s.Blob(0));
  if (rc != SQLITE_DONE) return SqlError(db_, "find expired jobs");
  return out;
}

absl::Status JobStore::Delete(const std::string& job_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const char* sql : {"DELETE FROM chunks WHERE job_id=?", "DELETE FROM jobs WHERE job_id=?"}) {
      Stmt s(db_, sql);
      s.BindText(1, job_id);
      if (s.Step() != SQLITE_DONE) return SqlError(db_, "delete job " + job_id);
    }
  }
  std::error_code ec;
  fs::remove_all(JobDir(job_id), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot remove ", JobDir(job_id), ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace magi
