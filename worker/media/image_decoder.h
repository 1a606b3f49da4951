// DecodeImage: the i2v input step (pipeline spec §1.2). Decodes one still image (JPEG, PNG
// or WebP) and stretches it to width x height exactly as the reference's
// `ffmpeg -f image2pipe -i pipe:0 -filter_complex "[0]scale=W:H[s0]" -map "[s0]"
//  -f rawvideo -pix_fmt rgb24 -vframes 1 pipe:` does: a plain stretch (no crop, no
// letterbox, aspect ratio not kept), swscale bicubic, ffmpeg's YUV->RGB conversion. The
// result is bit-identical to that command on the same FFmpeg build.
//
// Values stay uint8 0..255 in THWC order. Normalisation is NOT done here: the VAE side
// computes x = v / 127.5 - 1 in fp32, casts to bf16 and permutes to NCTHW [1,3,1,H,W]
// (spec §1.4; reference VaeHelper.encode).
//
// Untrusted input: every problem (zero bytes, wrong type, truncation, corruption, a picture
// over MediaLimits, decompression bombs) is an InvalidArgument naming `name`; memory use is
// bounded by the limits. Reentrant; safe to call from several threads.
#ifndef MAGI_WORKER_MEDIA_IMAGE_DECODER_H_
#define MAGI_WORKER_MEDIA_IMAGE_DECODER_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/media/media_limits.h"
#include "worker/media/rgb_frame.h"

namespace magi {

// `name` identifies the input in errors (e.g. "image 'cat.jpg'"); `bytes` is the whole
// file. width/height: the target size (runtime_config.video_size_w / _h).
absl::StatusOr<RgbFrame> DecodeImage(absl::string_view name, absl::string_view bytes, int width,
                                     int height, const MediaLimits& limits = {});

}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_IMAGE_DECODER_H_
