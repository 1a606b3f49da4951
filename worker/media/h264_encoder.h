// Internal to magi_media: H264Encoder turns RgbFrames into libx264 packets (yuv420p), the
// step shared by the plain and the fragmented MP4 writers.
//
// Frames are converted with swscale (bicubic, BT.601 limited range: what ffmpeg's
// auto-inserted scale filter does for `-pix_fmt yuv420p` from rgb24). Packet timestamps are
// in the codec time base 1/fps; pts is the frame index given by the caller.
//
// Not thread-safe. Owns its codec and scaler contexts; not copyable.
#ifndef MAGI_WORKER_MEDIA_H264_ENCODER_H_
#define MAGI_WORKER_MEDIA_H264_ENCODER_H_

#include <cstdint>
#include <vector>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/media/ffmpeg_io.h"
#include "worker/media/rgb_frame.h"
#include "worker/media/video_encode_options.h"

namespace magi {
namespace media_internal {

// Receives each encoded packet; the packet is only valid during the call.
using PacketSink = std::function<absl::Status(AVPacket* packet)>;

class H264Encoder {
 public:
  // Opens libx264 for width x height (both even and positive) at options.fps.
  // `max_b_frames` overrides options.max_b_frames when >= 0. `global_header` puts SPS/PPS in
  // the codec extradata (needed by MP4's avcC box) instead of in-band.
  static absl::StatusOr<std::unique_ptr<H264Encoder>> Open(int width, int height,
                                                          const VideoEncodeOptions& options,
                                                          int max_b_frames, bool global_header);
  H264Encoder(const H264Encoder&) = delete;
  H264Encoder& operator=(const H264Encoder&) = delete;
  ~H264Encoder();

  // Encodes one frame (must be width x height) with presentation index `pts`. Packets that
  // become ready are handed to `sink` (there is an encoder delay, see Flush()).
  absl::Status Encode(const RgbFrame& frame, int64_t pts, const PacketSink& sink);
  // Drains all delayed packets. The encoder cannot take frames afterwards.
  absl::Status Flush(const PacketSink& sink);

  const AVCodecContext* context() const { return codec_.get(); }
  // SPS/PPS bytes (with global_header), empty otherwise.
  std::string Extradata() const;

 private:
  H264Encoder() = default;
  absl::Status Drain(const PacketSink& sink);

  CodecContextPtr codec_;
  SwsPtr sws_;
  PacketPtr packet_;
  // The last frame's RGB bytes plus zeroed slack for swscale's over-reads (reused).
  static constexpr size_t kInputSlack = 64;
  std::vector<uint8_t> scratch_;
};

}  // namespace media_internal
}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_H264_ENCODER_H_
