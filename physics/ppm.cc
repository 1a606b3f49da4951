#include "physics/ppm.h"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace magi {
namespace physics {
namespace {

// Reads one unsigned decimal header field at `pos`, skipping whitespace and # comments.
bool ReadField(const std::string& s, size_t& pos, int& value) {
  while (pos < s.size()) {
    if (std::isspace(static_cast<unsigned char>(s[pos]))) {
      ++pos;
    } else if (s[pos] == '#') {
      while (pos < s.size() && s[pos] != '\n') ++pos;
    } else {
      break;
    }
  }
  if (pos >= s.size() || !std::isdigit(static_cast<unsigned char>(s[pos]))) return false;
  long v = 0;
  while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
    v = v * 10 + (s[pos++] - '0');
    if (v > 1000000) return false;
  }
  value = static_cast<int>(v);
  return true;
}

}  // namespace

absl::Status WritePpm(const std::string& path, const RgbFrame& frame) {
  if (frame.width <= 0 || frame.height <= 0 || frame.rgb24.size() != frame.ExpectedBytes()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": frame is ", frame.width, "x",
                                                   frame.height, " with ", frame.rgb24.size(),
                                                   " bytes"));
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::UnavailableError(absl::StrCat(path, ": cannot open for writing"));
  out << "P6\n" << frame.width << " " << frame.height << "\n255\n";
  out.write(reinterpret_cast<const char*>(frame.rgb24.data()),
            static_cast<std::streamsize>(frame.rgb24.size()));
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

absl::StatusOr<RgbFrame> ReadPpm(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (s.size() < 2 || s[0] != 'P' || s[1] != '6') {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a binary PPM (P6)"));
  }
  size_t pos = 2;
  int w = 0, h = 0, maxval = 0;
  if (!ReadField(s, pos, w) || !ReadField(s, pos, h) || !ReadField(s, pos, maxval) ||
      pos >= s.size() || !std::isspace(static_cast<unsigned char>(s[pos]))) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": malformed PPM header"));
  }
  ++pos;  // the single whitespace byte before the pixels
  if (w < 1 || h < 1 || w > kMaxPpmSide || h > kMaxPpmSide || maxval != 255) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": PPM is ", w, "x", h, " maxval ", maxval,
                                                   "; allowed: sides in [1, ", kMaxPpmSide,
                                                   "], maxval 255"));
  }
  RgbFrame f(w, h);
  if (s.size() - pos < f.rgb24.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": truncated: ", s.size() - pos, " pixel bytes, need ", f.rgb24.size()));
  }
  std::copy(s.begin() + pos, s.begin() + pos + f.rgb24.size(), f.rgb24.begin());
  return f;
}

std::string FrameFileName(int index) { return absl::StrFormat("frame_%04d.ppm", index); }

absl::Status WriteFrameFolder(const std::string& dir, const std::vector<RgbFrame>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    absl::Status s = WritePpm(dir + "/" + FrameFileName(static_cast<int>(i)), frames[i]);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RgbFrame>> ReadFrameFolder(const std::string& dir, int max_frames) {
  std::vector<RgbFrame> frames;
  for (int i = 0; i < max_frames; ++i) {
    const std::string path = dir + "/" + FrameFileName(i);
    std::ifstream probe(path, std::ios::binary);
    if (!probe) break;
    absl::StatusOr<RgbFrame> f = ReadPpm(path);
    if (!f.ok()) return f.status();
    frames.push_back(std::move(*f));
  }
  if (frames.empty()) {
    return absl::NotFoundError(absl::StrCat(dir, ": no ", FrameFileName(0)));
  }
  return frames;
}

}  // namespace physics
}  // namespace magi
