// FragmentedMp4Encoder: incremental H.264 fragmented-MP4 writer for streaming a video to a
// client chunk by chunk while it is being generated.
//
// Output layout: Init() returns the init segment (ftyp + moov with no samples); each
// AddChunk(frames) returns one media fragment (moof + mdat) holding exactly those frames;
// Finish() returns the trailing mfra index. The init segment followed by fragments 0..k is a
// valid, playable MP4 holding the frames of chunks 0..k, for every k, so a client can start
// playback (or stop) after any chunk. The mfra is optional for players.
//
// Every chunk starts with an IDR frame and is encoded by a fresh libx264 instance that is
// drained at the end of the chunk, so a fragment never waits for frames of the next chunk;
// B-frames are off so decode timestamps stay continuous across chunk boundaries. Other
// settings (CRF, preset) come from VideoEncodeOptions, as for EncodeMp4.
//
// Usage: Create -> Init -> AddChunk* -> Finish. Calls out of order fail with
// FailedPrecondition; after any error the encoder is unusable (FailedPrecondition).
// Not thread-safe; owns its FFmpeg contexts; not copyable.
#ifndef MAGI_WORKER_MEDIA_FRAGMENTED_MP4_ENCODER_H_
#define MAGI_WORKER_MEDIA_FRAGMENTED_MP4_ENCODER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/media/rgb_frame.h"
#include "worker/media/video_encode_options.h"

namespace magi {

namespace media_internal {
class H264Encoder;
class Mp4Muxer;
}  // namespace media_internal

class FragmentedMp4Encoder {
 public:
  // width and height must be even, in [2, 8192]; options are validated.
  static absl::StatusOr<std::unique_ptr<FragmentedMp4Encoder>> Create(
      int width, int height, const VideoEncodeOptions& options = {});
  FragmentedMp4Encoder(const FragmentedMp4Encoder&) = delete;
  FragmentedMp4Encoder& operator=(const FragmentedMp4Encoder&) = delete;
  ~FragmentedMp4Encoder();

  // The init segment (ftyp + moov). Call exactly once, first.
  absl::StatusOr<std::string> Init();
  // Encodes one chunk (at least one frame, each width x height RGB24) into one fragment.
  absl::StatusOr<std::string> AddChunk(const std::vector<RgbFrame>& frames);
  // Ends the stream; returns the trailing bytes (mfra). Call once, after Init().
  absl::StatusOr<std::string> Finish();

  int64_t frames_written() const { return next_pts_; }
  int64_t chunks_written() const { return chunks_; }

 private:
  enum class State { kCreated, kStreaming, kFinished, kFailed };
  FragmentedMp4Encoder() = default;
  absl::StatusOr<std::string> EncodeChunk(const std::vector<RgbFrame>& frames);

  int width_ = 0;
  int height_ = 0;
  VideoEncodeOptions options_;
  State state_ = State::kCreated;
  std::string extradata_;  // SPS/PPS in the init segment; every chunk's encoder must match
  std::unique_ptr<media_internal::H264Encoder> first_encoder_;  // opened by Create()
  std::unique_ptr<media_internal::Mp4Muxer> muxer_;
  int64_t next_pts_ = 0;
  int64_t chunks_ = 0;
};

}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_FRAGMENTED_MP4_ENCODER_H_
