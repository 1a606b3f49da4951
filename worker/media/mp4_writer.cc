#include "worker/media/mp4_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/media/h264_encoder.h"
#include "worker/media/mp4_muxer.h"

namespace magi {

using media_internal::H264Encoder;
using media_internal::Mp4Muxer;

absl::StatusOr<std::string> EncodeMp4(const std::vector<RgbFrame>& frames,
                                      const VideoEncodeOptions& options) {
  if (frames.empty()) return absl::InvalidArgumentError("mp4 encode: no frames to encode");
  MAGI_ASSIGN_OR_RETURN(std::unique_ptr<H264Encoder> encoder,
                        H264Encoder::Open(frames[0].width, frames[0].height, options,
                                          /*max_b_frames=*/-1, /*global_header=*/true));
  MAGI_ASSIGN_OR_RETURN(std::unique_ptr<Mp4Muxer> muxer,
                        Mp4Muxer::Open(*encoder, options.fps, /*fragmented=*/false));
  MAGI_RETURN_IF_ERROR(muxer->WriteHeader());
  auto sink = [&](AVPacket* p) { return muxer->WritePacket(p); };
  for (size_t i = 0; i < frames.size(); ++i) {
    MAGI_RETURN_IF_ERROR(encoder->Encode(frames[i], static_cast<int64_t>(i), sink));
  }
  MAGI_RETURN_IF_ERROR(encoder->Flush(sink));
  MAGI_RETURN_IF_ERROR(muxer->WriteTrailer());
  return muxer->Take();
}

absl::Status WriteMp4File(const std::string& path, const std::vector<RgbFrame>& frames,
                          const VideoEncodeOptions& options) {
  MAGI_ASSIGN_OR_RETURN(std::string bytes, EncodeMp4(frames, options));
  const std::string tmp = path + ".partial";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("mp4 encode: cannot create '", tmp, "': ", std::strerror(errno)));
  }
  const size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const bool ok = n == bytes.size() && std::fflush(f) == 0;
  std::fclose(f);
  if (!ok) {
    std::remove(tmp.c_str());
    return absl::DataLossError(absl::StrCat("mp4 encode: short write to '", tmp, "'"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    std::remove(tmp.c_str());
    return absl::PermissionDeniedError(
        absl::StrCat("mp4 encode: cannot rename '", tmp, "' to '", path, "': ", err));
  }
  return absl::OkStatus();
}

}  // namespace magi
