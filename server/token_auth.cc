#include "server/token_auth.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/worker_token.h"
#include "server/server_metrics.h"

namespace magi {

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Every byte of b is visited whatever a holds; a shorter a reads zeros past its end.
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff = diff | (x ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

namespace {

const char* Flag(TokenRole role) {
  return role == TokenRole::kWorker ? "--worker_token_file" : "--client_tokens_file";
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenAuthenticator>> TokenAuthenticator::FromFile(const std::string& token_file,
                                                                                  TokenRole role,
                                                                                  ServerMetrics* metrics) {
  std::unique_ptr<TokenAuthenticator> auth(new TokenAuthenticator(token_file, role, metrics));
  struct stat st;
  if (::stat(token_file.c_str(), &st) == 0) {
    auth->stamp_ = {static_cast<long long>(st.st_size), static_cast<unsigned long long>(st.st_ino),
                    st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
  }
  MAGI_ASSIGN_OR_RETURN(auto entries, auth->Read());
  auth->entries_ = std::move(entries);
  return auth;
}

absl::StatusOr<std::vector<TokenFileEntry>> TokenAuthenticator::Read() const {
  if (token_file_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(Flag(role_), ": not set; a token file is required"));
  }
  return ReadTokenFile(token_file_, Flag(role_), /*with_tenant=*/role_ == TokenRole::kClient);
}

void TokenAuthenticator::ReloadIfChangedLocked() {
  struct stat st;
  FileStamp now;
  if (::stat(token_file_.c_str(), &st) == 0) {
    now = {static_cast<long long>(st.st_size), static_cast<unsigned long long>(st.st_ino), st.st_mtim.tv_sec,
           st.st_mtim.tv_nsec};
  }
  if (now == stamp_) return;
  stamp_ = now;
  auto entries = Read();
  if (!entries.ok()) {
    std::fprintf(stderr, "magi-server: %s changed but cannot be used (%s); keeping the previous tokens\n",
                 Flag(role_), std::string(entries.status().message()).c_str());
    return;
  }
  entries_ = std::move(*entries);
  std::fprintf(stderr, "magi-server: %s %s reloaded (%zu token(s))\n", Flag(role_), token_file_.c_str(),
               entries_.size());
}

absl::StatusOr<std::string> TokenAuthenticator::Authenticate(absl::string_view authorization,
                                                             absl::string_view peer) {
  const bool worker = role_ == TokenRole::kWorker;
  if (authorization.empty()) {
    return Refuse("missing", peer,
                  worker ? "WorkerPool needs a worker token: send 'authorization: Bearer <token>' metadata "
                           "(magi-worker --worker_token_file)"
                         : "this server requires a client token: send 'authorization: Bearer <token>'");
  }
  const size_t scheme = std::strlen(kWorkerTokenScheme);
  if (authorization.size() < scheme || !absl::EqualsIgnoreCase(authorization.substr(0, scheme), kWorkerTokenScheme)) {
    return Refuse("malformed", peer,
                  worker ? "WorkerPool authorization metadata must be 'Bearer <worker token>'"
                         : "authorization must be 'Bearer <client token>'");
  }
  absl::string_view presented = absl::StripAsciiWhitespace(authorization.substr(scheme));
  const std::string* tenant = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ReloadIfChangedLocked();
    // No early exit: every configured token is compared.
    for (const TokenFileEntry& e : entries_) {
      if (ConstantTimeEquals(presented, e.token) && tenant == nullptr) tenant = &e.tenant;
    }
    if (tenant != nullptr) return *tenant;
  }
  return Refuse("invalid", peer, worker ? "worker token not accepted" : "client token not accepted");
}

absl::Status TokenAuthenticator::Refuse(const char* reason, absl::string_view peer, const char* message) {
  if (metrics_ != nullptr) {
    (role_ == TokenRole::kWorker ? metrics_->WorkerAuthFailures(reason) : metrics_->ClientAuthFailures(reason))
        .Increment();
  }
  // At most one log line per second: a flood of bad calls must not flood the log.
  std::time_t now = std::time(nullptr);
  long suppressed = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (now != last_log_) {
      last_log_ = now;
      suppressed = suppressed_logs_;
      suppressed_logs_ = 0;
    } else {
      ++suppressed_logs_;
    }
  }
  if (suppressed >= 0) {
    std::fprintf(stderr, "magi-server: refused %s call from %s: %s token%s\n",
                 role_ == TokenRole::kWorker ? "WorkerPool" : "client", std::string(peer).c_str(), reason,
                 suppressed > 0 ? absl::StrCat(" (", suppressed, " similar refusals not logged)").c_str() : "");
  }
  return absl::UnauthenticatedError(message);
}

absl::StatusOr<std::string> WriteGeneratedWorkerToken(const std::string& dir) {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("getrandom for the worker token: ", std::strerror(errno)));
    }
    got += static_cast<size_t>(n);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token.push_back(kHex[b >> 4]);
    token.push_back(kHex[b & 15]);
  }
  const std::string path = (std::filesystem::path(dir) / "worker_token").string();
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--state_dir: cannot create ", tmp, ": ", std::strerror(errno)));
  }
  std::string line = token + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ok = (::close(fd) == 0) && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return absl::InvalidArgumentError(absl::StrCat("--state_dir: cannot write ", path, ": ", std::strerror(err)));
  }
  return path;
}

}  // namespace magi
