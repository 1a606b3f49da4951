// DecodePrefixVideo: the v2v input step (pipeline spec §1.3). Decodes a prefix video (MP4 /
// MOV, or WebM / Matroska), resamples it to `fps` and stretches it to width x height exactly
// as the reference's
// `ffmpeg -f mp4 -ss 0 -i PATH -filter_complex "[0]fps=fps=<fps>[s0];[s0]scale=W:H[s1]"
//  -map "[s1]" -f rawvideo -nostdin -pix_fmt rgb24 pipe:`
// does (including ffmpeg's display-matrix autorotation and its `-ss 0` timestamp shift),
// then keeps the FIRST `max_frames` frames (the reference hard-codes prefix_frame = 32;
// fewer if the clip is shorter). Output is bit-identical to that command's first frames on
// the same FFmpeg build. Decoding stops as soon as enough frames exist.
//
// Deviations from the reference, all for inputs it would mishandle: WebM/Matroska are
// accepted (the reference forces the mp4 demuxer); cover-art streams are skipped when
// picking the video stream; streams that change picture size mid-way are rejected.
//
// Values stay uint8 0..255 in THWC order. Normalisation is NOT done here: the VAE side
// computes x = v / 127.5 - 1 in fp32, casts to bf16 and permutes to NCTHW [1,3,F,H,W]
// (spec §1.4). Note the VAE's temporal tiles: F frames in tiles of fps/2; a trailing tile of
// 2-3 frames yields no latent frame in the reference (spec §1.3) -- the engine must check F.
//
// Untrusted input: every problem (zero bytes, wrong type, truncation, corruption, over-limit
// size, frame count or time) is an error naming `name`; never a crash, and memory is bounded
// by MediaLimits. Reentrant; safe to call from several threads.
#ifndef MAGI_WORKER_MEDIA_PREFIX_VIDEO_DECODER_H_
#define MAGI_WORKER_MEDIA_PREFIX_VIDEO_DECODER_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/media/media_limits.h"
#include "worker/media/rgb_frame.h"

namespace magi {

// The reference's hard-coded v2v prefix length in frames (process_prefix_video).
inline constexpr int kPrefixVideoFrames = 32;

// `name` identifies the input in errors; `bytes` is the whole file; width/height the target
// size; fps the resampling rate (runtime_config.fps, 1..240); max_frames in
// 1..limits.max_output_frames. Returns 1..max_frames frames.
absl::StatusOr<std::vector<RgbFrame>> DecodePrefixVideo(absl::string_view name,
                                                        absl::string_view bytes, int width,
                                                        int height, int fps,
                                                        int max_frames = kPrefixVideoFrames,
                                                        const MediaLimits& limits = {});

}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_PREFIX_VIDEO_DECODER_H_
