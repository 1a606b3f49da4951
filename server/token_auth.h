// TokenAuthenticator: the one bearer-token check of magi-server, for both kinds of caller
// (files in base/worker_token.h's format):
//
//   TokenRole::kWorker  magi.internal.v1.WorkerPool calls; the tokens of --worker_token_file.
//                       A group without a valid token is refused before it can register, so
//                       it never sees a job. Refusals: magi_worker_auth_failures_total{reason}.
//   TokenRole::kClient  magi.v1 RPCs and the OpenAI-compatible HTTP API; the "<token> <tenant>"
//                       lines of --client_tokens_file. Authenticate() returns the caller's
//                       tenant, which owns the jobs it submits. Refusals:
//                       magi_client_auth_failures_total{reason}.
//
// The presented value is `authorization: Bearer <token>` (gRPC metadata or HTTP header).
// Refusals are UNAUTHENTICATED, counted and logged (peer and reason, never the presented
// value; at most one line a second).
//
// The file is re-read when it changes (size, mtime or inode), so tokens rotate without a
// restart; a changed file that no longer parses keeps the previous tokens (and is logged).
//
// Thread safety: Authenticate()/Check() may be called from any thread. Not copyable.
#ifndef MAGI_SERVER_TOKEN_AUTH_H_
#define MAGI_SERVER_TOKEN_AUTH_H_

#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/worker_token.h"

namespace magi {

class ServerMetrics;

enum class TokenRole { kWorker, kClient };

class TokenAuthenticator {
 public:
  // Loads `token_file`; InvalidArgument naming the flag (--worker_token_file or
  // --client_tokens_file) when it is missing, unreadable, empty or malformed. `metrics` may
  // be null (no counting); not owned.
  static absl::StatusOr<std::unique_ptr<TokenAuthenticator>> FromFile(const std::string& token_file,
                                                                      TokenRole role, ServerMetrics* metrics);

  TokenAuthenticator(const TokenAuthenticator&) = delete;
  TokenAuthenticator& operator=(const TokenAuthenticator&) = delete;

  // The tenant of the token when `authorization` (the metadata or header value; empty when
  // absent) is "Bearer <token>" for a token of the file, compared in constant time (empty
  // for a worker token). Otherwise UNAUTHENTICATED with a message for the caller, counted
  // and logged with `peer`.
  absl::StatusOr<std::string> Authenticate(absl::string_view authorization, absl::string_view peer);
  absl::Status Check(absl::string_view authorization, absl::string_view peer) {
    return Authenticate(authorization, peer).status();
  }

  const std::string& token_file() const { return token_file_; }
  TokenRole role() const { return role_; }

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
  TokenAuthenticator(std::string token_file, TokenRole role, ServerMetrics* metrics)
      : token_file_(std::move(token_file)), role_(role), metrics_(metrics) {}
  // The file's entries (ReadTokenFile with this role's flag and format).
  absl::StatusOr<std::vector<TokenFileEntry>> Read() const;
  // Re-reads the file if its stamp changed. Caller holds mu_.
  void ReloadIfChangedLocked();
  absl::Status Refuse(const char* reason, absl::string_view peer, const char* message);

  const std::string token_file_;
  const TokenRole role_;
  ServerMetrics* const metrics_;
  std::mutex mu_;
  FileStamp stamp_;
  std::vector<TokenFileEntry> entries_;
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

#endif  // MAGI_SERVER_TOKEN_AUTH_H_
