#include "worker/media/video_encode_options.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace magi {
namespace {
constexpr std::array<const char*, 10> kPresets = {
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium",    "slow",      "slower",   "veryslow", "placebo"};
constexpr std::array<const char*, 8> kTunes = {
    "film", "animation", "grain", "stillimage", "psnr", "ssim", "fastdecode", "zerolatency"};

template <size_t N>
bool Contains(const std::array<const char*, N>& names, const std::string& name) {
  for (const char* n : names) {
    if (name == n) return true;
  }
  return false;
}
}  // namespace

absl::Status ValidateVideoEncodeOptions(const VideoEncodeOptions& o) {
  if (o.fps < 1 || o.fps > 240) {
    return absl::InvalidArgumentError(absl::StrCat("video encode: fps = ", o.fps,
                                                   " is outside the allowed range [1, 240]"));
  }
  if (o.crf < 0 || o.crf > 51) {
    return absl::InvalidArgumentError(absl::StrCat("video encode: crf = ", o.crf,
                                                   " is outside the allowed range [0, 51]"));
  }
  if (!Contains(kPresets, o.preset)) {
    return absl::InvalidArgumentError(absl::StrCat("video encode: preset '", o.preset,
                                                   "' is not one of ",
                                                   absl::StrJoin(kPresets, ", ")));
  }
  if (!o.tune.empty() && !Contains(kTunes, o.tune)) {
    return absl::InvalidArgumentError(absl::StrCat("video encode: tune '", o.tune,
                                                   "' is not empty or one of ",
                                                   absl::StrJoin(kTunes, ", ")));
  }
  if (o.max_b_frames < -1 || o.max_b_frames > 16) {
    return absl::InvalidArgumentError(absl::StrCat("video encode: max_b_frames = ",
                                                   o.max_b_frames,
                                                   " is outside the allowed range [-1, 16]"));
  }
  if (o.threads < 0 || o.threads > 64) {
    return absl::InvalidArgumentError(absl::StrCat("video encode: threads = ", o.threads,
                                                   " is outside the allowed range [0, 64]"));
  }
  return absl::OkStatus();
}

}  // namespace magi
