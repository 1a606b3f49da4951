// WorkerAuthenticator: decides whether a magi.internal.v1.WorkerPool call comes from a real
// worker group. A group proves it by presenting a token of the server's worker token file
// (base/worker_token.h) as `authorization: Bearer <token>` metadata; anything else is refused
// with UNAUTHENTICATED before the stream can register, so such a caller never sees a job.
// Refusals are counted in magi_worker_auth_failures_total{reason} and logged (peer and
// reason, never the presented value).
//
// The file is re-read when it changes (size, mtime or inode), so tokens rotate without a
// restart; a changed file that no longer parses keeps the previous tokens (and is logged).
//
// Thread safety: Check() may be called from any thread. Not copyable.
#ifndef MAGI_SERVER_WORKER_AUTH_H_
#define MAGI_SERVER_WORKER_AUTH_H_

#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace magi {

class ServerMetrics;

class WorkerAuthenticator {
 public:
  // Loads `token_file`; InvalidArgument naming --worker_token_file when it is missing,
  // unreadable, empty or malformed. `metrics` may be null (no counting); not owned.
  static absl::StatusOr<std::unique_ptr<WorkerAuthenticator>> FromFile(const std::string& token_file,
                                                                       ServerMetrics* metrics);

  WorkerAuthenticator(const WorkerAuthenticator&) = delete;
  WorkerAuthenticator& operator=(const WorkerAuthenticator&) = delete;

  // OK when `authorization` (the metadata value; empty when absent) is "Bearer <token>" for a
  // token of the file, compared in constant time. Otherwise UNAUTHENTICATED with a message
  // for the caller, counted and logged with `peer`.
  absl::Status Check(absl::string_view authorization, absl::string_view peer);

  const std::string& token_file() const { return token_file_; }

 private:
  struct FileStamp {
    bool operator==(const FileStamp& o) const {
      return size == o.size && inode == o.inode && mtime_sec == o.mtime_sec && mtime_nsec == o.mtime_nsec;
    }
    long long size = -1;
    unsigned long long inode = 0;
    time_t mtime_sec = 0;
    long mtime_nsec = 0;
  };
  WorkerAuthenticator(std::string token_file, ServerMetrics* metrics)
      : token_file_(std::move(token_file)), metrics_(metrics) {}
  // Re-reads the file if its stamp changed. Caller holds mu_.
  void ReloadIfChangedLocked();
  absl::Status Refuse(const char* reason, absl::string_view peer, const char* message);

  const std::string token_file_;
  ServerMetrics* const metrics_;
  std::mutex mu_;
  FileStamp stamp_;
  std::vector<std::string> tokens_;
  std::time_t last_log_ = 0;
  long suppressed_logs_ = 0;
};

// Writes a fresh random worker token (32 bytes from the kernel's CSPRNG, hex) to
// `<dir>/worker_token` with mode 0600 (atomically: temp file + rename) and returns the path.
// magi-server uses it when no --worker_token_file is given; its local workers read it.
absl::StatusOr<std::string> WriteGeneratedWorkerToken(const std::string& dir);

// a == b without an early exit on the first differing byte (the time depends only on
// b.size()): a remote caller cannot find the token byte by byte by timing refusals.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace magi

#endif  // MAGI_SERVER_WORKER_AUTH_H_
