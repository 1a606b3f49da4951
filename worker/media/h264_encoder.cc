#include "worker/media/h264_encoder.h"

#include <cstring>

extern "C" {
#include <libavutil/opt.h>
#include <libavutil/pixfmt.h>
}

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace magi {
namespace media_internal {
namespace {

// x264's instruction-set cap for this host, or nullptr for x264's own choice.
//
// x264 0.164's AVX-512 kernels (picked on AVX-512 hosts) are not deterministic: measured on an
// AMD EPYC with AVX-512, encoding the same 24 small frames (32x32, 32x64, 48x48) with fresh
// encoders gave different packets in 1-5 of 59 runs, depending on what the heap held before
// (what a resumed job's fragments must never do). Capped at AVX2 the same runs agree every
// time, and the bytes equal what an AVX2-only host encodes (x264's SSE4.2 and AVX2 paths
// give identical output; measured at 32x64 and 128x128). So: the AVX2 set wherever the host
// has AVX-512 (every AVX-512 CPU has AVX2, FMA3, BMI1/2 and LZCNT, the set "AVX2" names).
const char* X264AsmCap() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2")) return "AVX2";
#endif
  return nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<H264Encoder>> H264Encoder::Open(int width, int height,
                                                             const VideoEncodeOptions& options,
                                                             int max_b_frames,
                                                             bool global_header) {
  InitFfmpegLogging();
  MAGI_RETURN_IF_ERROR(ValidateVideoEncodeOptions(options));
  if (width <= 0 || height <= 0 || width % 2 != 0 || height % 2 != 0 || width > 8192 ||
      height > 8192) {
    return absl::InvalidArgumentError(absl::StrCat(
        "video encode: frame size ", width, "x", height,
        " is invalid; width and height must be even and in [2, 8192] (yuv420p)"));
  }
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (codec == nullptr) {
    return absl::FailedPreconditionError(
        "video encode: this FFmpeg build has no libx264 encoder");
  }
  std::unique_ptr<H264Encoder> enc(new H264Encoder());
  enc->codec_.reset(avcodec_alloc_context3(codec));
  enc->packet_.reset(av_packet_alloc());
  if (!enc->codec_ || !enc->packet_) return absl::ResourceExhaustedError("video encode: out of memory");
  AVCodecContext* c = enc->codec_.get();
  c->width = width;
  c->height = height;
  c->pix_fmt = AV_PIX_FMT_YUV420P;
  c->time_base = AVRational{1, options.fps};
  c->framerate = AVRational{options.fps, 1};
  c->sample_aspect_ratio = AVRational{1, 1};
  c->thread_count = options.threads;
  if (global_header) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  const int b_frames = max_b_frames >= 0 ? max_b_frames : options.max_b_frames;
  if (b_frames >= 0) c->max_b_frames = b_frames;
  AVDictionary* opts = nullptr;
  av_dict_set(&opts, "preset", options.preset.c_str(), 0);
  av_dict_set_int(&opts, "crf", options.crf, 0);
  if (!options.tune.empty()) av_dict_set(&opts, "tune", options.tune.c_str(), 0);
  static const char* const cap = X264AsmCap();  // the host does not change: ask once
  if (cap != nullptr) av_dict_set(&opts, "x264-params", absl::StrCat("asm=", cap).c_str(), 0);
  const int err = avcodec_open2(c, codec, &opts);
  av_dict_free(&opts);
  if (err < 0) return AvError(err, "video encode: opening libx264");

  // Same conversion as ffmpeg's auto-inserted scale filter (the CLI passes flags=bicubic).
  enc->sws_.reset(sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height,
                                 AV_PIX_FMT_YUV420P, SWS_BICUBIC, nullptr, nullptr, nullptr));
  if (!enc->sws_) return absl::InternalError("video encode: cannot create the RGB->YUV scaler");
  return enc;
}

H264Encoder::~H264Encoder() = default;

std::string H264Encoder::Extradata() const {
  if (codec_->extradata == nullptr || codec_->extradata_size <= 0) return std::string();
  return std::string(reinterpret_cast<const char*>(codec_->extradata), codec_->extradata_size);
}

absl::Status H264Encoder::Encode(const RgbFrame& frame, int64_t pts, const PacketSink& sink) {
  AVCodecContext* c = codec_.get();
  if (frame.width != c->width || frame.height != c->height ||
      frame.rgb24.size() != frame.ExpectedBytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "video encode: frame ", pts, " is ", frame.width, "x", frame.height, " with ",
        frame.rgb24.size(), " bytes; expected ", c->width, "x", c->height, " with ",
        static_cast<size_t>(c->width) * c->height * 3, " bytes of RGB24"));
  }
  FramePtr yuv(av_frame_alloc());
  if (!yuv) return absl::ResourceExhaustedError("video encode: out of memory");
  yuv->format = AV_PIX_FMT_YUV420P;
  yuv->width = c->width;
  yuv->height = c->height;
  int err = av_frame_get_buffer(yuv.get(), 0);
  if (err < 0) return AvError(err, "video encode: allocating a YUV frame");
  // Deterministic bytes everywhere the encoder may look, alignment padding included: the
  // same frames must give the same fragments (a resumed job re-encodes earlier chunks).
  for (int plane = 0; plane < 3; ++plane) {
    const int rows = plane == 0 ? c->height : (c->height + 1) / 2;
    std::memset(yuv->data[plane], 0, static_cast<size_t>(yuv->linesize[plane]) * rows);
  }
  // swscale's SIMD input stage reads a little past the end of each row, and it picks its
  // code path by the source's alignment (paths that may round differently): give it a copy
  // at a 64-byte aligned address with zeroed slack, so the same frame always converts the
  // same way wherever the caller's buffer happens to live.
  const size_t bytes = frame.rgb24.size();
  scratch_.resize(bytes + kInputSlack + 64);
  uint8_t* aligned = scratch_.data() + (64 - reinterpret_cast<uintptr_t>(scratch_.data()) % 64) % 64;
  std::memcpy(aligned, frame.rgb24.data(), bytes);
  std::memset(aligned + bytes, 0, kInputSlack);
  const uint8_t* src[1] = {aligned};
  const int src_stride[1] = {3 * frame.width};
  sws_scale(sws_.get(), src, src_stride, 0, frame.height, yuv->data, yuv->linesize);
  yuv->pts = pts;
  err = avcodec_send_frame(c, yuv.get());
  if (err < 0) return AvError(err, "video encode: sending a frame to libx264");
  return Drain(sink);
}

absl::Status H264Encoder::Flush(const PacketSink& sink) {
  const int err = avcodec_send_frame(codec_.get(), nullptr);
  if (err < 0 && err != AVERROR_EOF) return AvError(err, "video encode: flushing libx264");
  return Drain(sink);
}

absl::Status H264Encoder::Drain(const PacketSink& sink) {
  while (true) {
    const int err = avcodec_receive_packet(codec_.get(), packet_.get());
    if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return absl::OkStatus();
    if (err < 0) return AvError(err, "video encode: receiving a packet from libx264");
    if (packet_->duration <= 0) packet_->duration = 1;  // one frame in 1/fps
    absl::Status st = sink(packet_.get());
    av_packet_unref(packet_.get());
    MAGI_RETURN_IF_ERROR(st);
  }
}

}  // namespace media_internal
}  // namespace magi
