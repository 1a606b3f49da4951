// MediaLimits: hard caps applied to every untrusted image or video before and while it is
// decoded, so a hostile upload costs bounded memory and time.
//
// Why each cap exists:
// * max_input_bytes   -- we hold the whole upload in memory (the reference also reads the image
//                        into memory, spec §1.2).
// * max_width/height/pixels -- checked on the container header *and* enforced inside the
//                        decoder (AVCodecContext::max_pixels) so a tiny file declaring a huge
//                        picture (decompression bomb) fails before the frame is allocated.
// * max_streams       -- every stream gets a probing decoder in avformat_find_stream_info.
// * max_decoded_frames / max_packets -- the fps filter may discard most decoded frames (e.g.
//                        thousands of frames sharing one timestamp), so the number of output
//                        frames alone does not bound the work.
// * max_output_frames -- cap on what a caller may ask for.
// * max_decode_seconds -- wall-clock budget per call.
// The defaults admit 8K stills and 4K prefix videos, far above MAGI-1's 720p.
//
// Plain value type; thread-compatible.
#ifndef MAGI_WORKER_MEDIA_MEDIA_LIMITS_H_
#define MAGI_WORKER_MEDIA_MEDIA_LIMITS_H_

#include <cstdint>

namespace magi {

struct MediaLimits {
  int64_t max_input_bytes = int64_t{512} << 20;  // 512 MiB
  int max_width = 8192;
  int max_height = 8192;
  int64_t max_pixels = int64_t{8192} * 4320;  // one 8K UHD frame
  int max_streams = 16;
  int64_t max_decoded_frames = 20000;
  int64_t max_packets = 200000;
  int max_output_frames = 4096;
  // Output (target) size bounds for the resize; MAGI-1 uses up to 1280x720.
  int max_output_width = 4096;
  int max_output_height = 4096;
  // Wall-clock budget for one decode call, checked between packets and inside the demuxer
  // (interrupt callback): a last line of defence against inputs that are slow by design.
  double max_decode_seconds = 120.0;
};

}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_MEDIA_LIMITS_H_
