// Internal to magi_media: Mp4Muxer wraps libavformat's MP4 muxer writing one H.264 stream
// into memory, either as a plain MP4 (moov at the end, like the reference's ffmpeg call) or
// as fragmented MP4 (ftyp+moov init segment, then one moof+mdat per FlushFragment()).
//
// Not thread-safe. Owns the AVFormatContext and the memory sink; not copyable.
#ifndef MAGI_WORKER_MEDIA_MP4_MUXER_H_
#define MAGI_WORKER_MEDIA_MP4_MUXER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/media/ffmpeg_io.h"
#include "worker/media/h264_encoder.h"

namespace magi {
namespace media_internal {

class Mp4Muxer {
 public:
  // Creates the muxer with one video stream described by `encoder` (size, extradata) at
  // `fps`. Nothing is written until WriteHeader().
  static absl::StatusOr<std::unique_ptr<Mp4Muxer>> Open(const H264Encoder& encoder, int fps,
                                                       bool fragmented);
  Mp4Muxer(const Mp4Muxer&) = delete;
  Mp4Muxer& operator=(const Mp4Muxer&) = delete;
  ~Mp4Muxer();

  absl::Status WriteHeader();
  // `packet` is in the encoder time base 1/fps; it is rescaled in place and written.
  absl::Status WritePacket(AVPacket* packet);
  // Fragmented only: closes the current fragment (moof+mdat) with the packets so far.
  absl::Status FlushFragment();
  absl::Status WriteTrailer();
  // Bytes produced since the last Take() (fragmented), or the whole file after
  // WriteTrailer() (plain).
  std::string Take() { return writer_->Take(); }

 private:
  Mp4Muxer() = default;

  std::unique_ptr<MemoryWriter> writer_;
  AVFormatContext* format_ = nullptr;
  AVStream* stream_ = nullptr;
  AVRational codec_time_base_{1, 1};
  bool fragmented_ = false;
  bool header_written_ = false;
};

}  // namespace media_internal
}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_MP4_MUXER_H_
