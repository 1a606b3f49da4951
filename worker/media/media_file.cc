#include "worker/media/media_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace magi {

absl::StatusOr<std::string> ReadMediaFile(const std::string& path, const MediaLimits& limits) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int e = errno;
    std::string msg = absl::StrCat("media file '", path, "': ", std::strerror(e));
    if (e == ENOENT) return absl::NotFoundError(msg);
    if (e == EACCES) return absl::PermissionDeniedError(msg);
    return absl::InvalidArgumentError(msg);
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(f);
    return absl::InvalidArgumentError(
        absl::StrCat("media file '", path, "': not a regular file"));
  }
  if (st.st_size > limits.max_input_bytes) {
    std::fclose(f);
    return absl::InvalidArgumentError(absl::StrCat("media file '", path, "': ", st.st_size,
                                                   " bytes, more than the limit of ",
                                                   limits.max_input_bytes, " bytes"));
  }
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  const size_t n = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  if (n != bytes.size()) {
    return absl::DataLossError(absl::StrCat("media file '", path, "': read ", n, " of ",
                                            bytes.size(), " bytes"));
  }
  return bytes;
}

}  // namespace magi
