// The worker token: the shared secret a worker group presents on every
// magi.internal.v1.WorkerPool call, as gRPC metadata `authorization: Bearer <token>`.
// magi-server and magi-worker both read it from a file (--worker_token_file), never from the
// command line; this header is the one owner of the file format and the metadata spelling.
//
// The same format, with a tenant after each token, is the client tokens file
// (--client_tokens_file: "<token> <tenant>" per line); ReadTokenFile reads both.
//
// File format: one token per line; blank lines, lines starting with '#' and surrounding
// whitespace are ignored (a Kubernetes Secret's trailing newline is fine). A token is 16 to
// 1024 printable ASCII characters without spaces. The server accepts every token in its file
// (rotation: add the new token, roll the workers, remove the old one); a worker presents the
// first one.
//
// Thread safety: free functions without shared state.
#ifndef MAGI_BASE_WORKER_TOKEN_H_
#define MAGI_BASE_WORKER_TOKEN_H_

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "base/status_macros.h"

namespace magi {

inline constexpr char kWorkerTokenMetadataKey[] = "authorization";  // gRPC keys are lower case
inline constexpr char kWorkerTokenScheme[] = "Bearer ";
inline constexpr size_t kWorkerTokenMinChars = 16;
inline constexpr size_t kWorkerTokenMaxChars = 1024;
inline constexpr size_t kWorkerTokenFileMaxBytes = 64 << 10;

// One line of a token file: the token and, for a client tokens file, the tenant it maps to.
struct TokenFileEntry {
  std::string token;
  std::string tenant;  // empty in a worker token file
};

// A tenant name: 1 to 64 characters of [A-Za-z0-9._-].
inline bool IsValidTenantName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

// Reads a token file: `flag` (e.g. "--worker_token_file") names it in errors; with
// `with_tenant` every line is "<token> <tenant>" (the client tokens file), otherwise just
// "<token>". Entries in file order (at least one). Errors name the flag, the file and what
// is wrong (missing, unreadable, too large, no token, a malformed line by number) but never
// echo a token's characters.
inline absl::StatusOr<std::vector<TokenFileEntry>> ReadTokenFile(const std::string& path, absl::string_view flag,
                                                                  bool with_tenant) {
  const std::string what = absl::StrCat(flag, " '", path, "'");
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": not set; a token file is required"));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": cannot open (", std::strerror(errno), ")"));
  }
  if (!S_ISREG(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(what, ": not a regular file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": cannot open (", std::strerror(errno), ")"));
  }
  std::string data;
  data.resize(kWorkerTokenFileMaxBytes + 1);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(what, ": read error"));
  data.resize(static_cast<size_t>(in.gcount()));
  if (data.size() > kWorkerTokenFileMaxBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": larger than ", kWorkerTokenFileMaxBytes, " bytes; not a token file"));
  }
  std::vector<TokenFileEntry> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(data, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    TokenFileEntry entry;
    if (with_tenant) {
      std::vector<absl::string_view> fields = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
      if (fields.size() != 2) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": line ", line_number,
                                                       ": expected '<token> <tenant>', found ", fields.size(),
                                                       " fields"));
      }
      if (!IsValidTenantName(fields[1])) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": line ", line_number, ": tenant '", fields[1],
                                                       "' is not 1 to 64 characters of [A-Za-z0-9._-]"));
      }
      entry.tenant = std::string(fields[1]);
      line = fields[0];
    }
    if (line.size() < kWorkerTokenMinChars || line.size() > kWorkerTokenMaxChars) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": line ", line_number, ": a token has ",
                                                     kWorkerTokenMinChars, " to ", kWorkerTokenMaxChars,
                                                     " characters, this one ", line.size()));
    }
    for (char c : line) {
      if (c <= ' ' || c > '~') {
        return absl::InvalidArgumentError(absl::StrCat(
            what, ": line ", line_number, ": a token is printable ASCII without spaces"));
      }
    }
    entry.token = std::string(line);
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": holds no token (empty file?)"));
  }
  return entries;
}

// The tokens of a worker token file (--worker_token_file), in file order (at least one).
inline absl::StatusOr<std::vector<std::string>> ReadWorkerTokenFile(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("--worker_token_file: not set; a file with the worker token is required");
  MAGI_ASSIGN_OR_RETURN(auto entries, ReadTokenFile(path, "--worker_token_file", /*with_tenant=*/false));
  std::vector<std::string> tokens;
  for (TokenFileEntry& e : entries) tokens.push_back(std::move(e.token));
  return tokens;
}

}  // namespace magi

#endif  // MAGI_BASE_WORKER_TOKEN_H_
