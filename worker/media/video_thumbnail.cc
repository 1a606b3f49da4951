#include "worker/media/video_thumbnail.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/media/ffmpeg_io.h"

extern "C" {
#include <libavutil/imgutils.h>
}

namespace magi {
namespace {

using media_internal::AvError;
using media_internal::CodecContextPtr;
using media_internal::FramePtr;
using media_internal::PacketPtr;
using media_internal::SwsPtr;

struct FormatCloser {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
using FormatPtr = std::unique_ptr<AVFormatContext, FormatCloser>;

// An opened video file: the best video stream and its decoder.
struct OpenedVideo {
  FormatPtr format;
  CodecContextPtr dec;
  int stream = -1;
  int64_t frames_hint = 0;  // the container's frame count (MP4 has it), 0 when unknown
};

absl::StatusOr<OpenedVideo> OpenVideo(const std::string& path) {
  AVFormatContext* raw = nullptr;
  int err = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (err == AVERROR(ENOENT)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  if (err < 0) return AvError(err, absl::StrCat(path, ": cannot open"));
  OpenedVideo v;
  v.format.reset(raw);
  if ((err = avformat_find_stream_info(v.format.get(), nullptr)) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read stream info: ", media_internal::AvErrorText(err)));
  }
  v.stream = av_find_best_stream(v.format.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (v.stream < 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no video stream"));
  const AVStream* st = v.format->streams[v.stream];
  v.frames_hint = st->nb_frames > 0 ? st->nb_frames : 0;
  const AVCodecParameters* par = st->codecpar;
  const AVCodec* codec = avcodec_find_decoder(par->codec_id);
  if (codec == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no decoder for ", avcodec_get_name(par->codec_id)));
  }
  v.dec.reset(avcodec_alloc_context3(codec));
  if (!v.dec) return absl::ResourceExhaustedError("cannot allocate a decoder");
  if ((err = avcodec_parameters_to_context(v.dec.get(), par)) < 0) return AvError(err, "decoder parameters");
  if ((err = avcodec_open2(v.dec.get(), codec, nullptr)) < 0) return AvError(err, "open decoder");
  return v;
}

// Decodes the frames of `v` in order, handing each to `visit` (frame index, frame) until it
// returns false or the stream ends. Returns the number of frames decoded.
absl::StatusOr<int64_t> DecodeFrames(OpenedVideo& v, const std::string& path,
                                     const std::function<bool(int64_t, const AVFrame*)>& visit) {
  PacketPtr packet(av_packet_alloc());
  FramePtr frame(av_frame_alloc());
  if (!packet || !frame) return absl::ResourceExhaustedError("cannot allocate a frame");
  bool flushing = false;
  int64_t count = 0;
  while (true) {
    int err = avcodec_receive_frame(v.dec.get(), frame.get());
    if (err == 0) {
      const bool more = visit(count++, frame.get());
      av_frame_unref(frame.get());
      if (!more) return count;
      continue;
    }
    if (err != AVERROR(EAGAIN) || flushing) break;
    err = av_read_frame(v.format.get(), packet.get());
    if (err == AVERROR_EOF) {
      flushing = true;
      avcodec_send_packet(v.dec.get(), nullptr);
      continue;
    }
    if (err < 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": read error: ", media_internal::AvErrorText(err)));
    }
    if (packet->stream_index == v.stream) {
      err = avcodec_send_packet(v.dec.get(), packet.get());
      if (err < 0 && err != AVERROR(EAGAIN)) {
        av_packet_unref(packet.get());
        return absl::InvalidArgumentError(absl::StrCat(path, ": undecodable video: ", media_internal::AvErrorText(err)));
      }
    }
    av_packet_unref(packet.get());
  }
  return count;
}

// Decodes the first frame of the best video stream.
absl::StatusOr<FramePtr> DecodeFirstFrame(const std::string& path) {
  MAGI_ASSIGN_OR_RETURN(auto v, OpenVideo(path));
  FramePtr first(av_frame_alloc());
  if (!first) return absl::ResourceExhaustedError("cannot allocate a frame");
  MAGI_ASSIGN_OR_RETURN(auto n, DecodeFrames(v, path, [&](int64_t, const AVFrame* f) {
    av_frame_ref(first.get(), f);
    return false;
  }));
  if (n == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": holds no decodable video frame"));
  return std::move(first);
}

// A full-range YUV 4:2:0 picture of w x h for the mjpeg encoder.
absl::StatusOr<FramePtr> NewJpegPicture(int w, int h) {
  FramePtr yuv(av_frame_alloc());
  if (!yuv) return absl::ResourceExhaustedError("cannot allocate a frame");
  yuv->format = AV_PIX_FMT_YUVJ420P;
  yuv->width = w;
  yuv->height = h;
  int err = av_frame_get_buffer(yuv.get(), 0);
  if (err < 0) return AvError(err, "picture buffer");
  return std::move(yuv);
}

// Encodes a YUVJ420P picture as one JPEG at qscale `quality`.
absl::StatusOr<std::string> EncodeJpeg(AVFrame* yuv, int quality) {
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
  if (codec == nullptr) return absl::InternalError("this FFmpeg build has no mjpeg encoder");
  CodecContextPtr enc(avcodec_alloc_context3(codec));
  if (!enc) return absl::ResourceExhaustedError("cannot allocate the mjpeg encoder");
  enc->width = yuv->width;
  enc->height = yuv->height;
  enc->pix_fmt = AV_PIX_FMT_YUVJ420P;  // full range: what JPEG viewers expect
  enc->time_base = AVRational{1, 25};
  enc->flags |= AV_CODEC_FLAG_QSCALE;
  enc->global_quality = FF_QP2LAMBDA * quality;
  int err = avcodec_open2(enc.get(), codec, nullptr);
  if (err < 0) return AvError(err, "open mjpeg encoder");
  yuv->quality = enc->global_quality;
  yuv->pts = 0;
  PacketPtr packet(av_packet_alloc());
  if (!packet) return absl::ResourceExhaustedError("cannot allocate a packet");
  if ((err = avcodec_send_frame(enc.get(), yuv)) < 0) return AvError(err, "mjpeg encode");
  if ((err = avcodec_send_frame(enc.get(), nullptr)) < 0) return AvError(err, "mjpeg flush");
  std::string jpeg;
  while ((err = avcodec_receive_packet(enc.get(), packet.get())) == 0) {
    jpeg.append(reinterpret_cast<const char*>(packet->data), static_cast<size_t>(packet->size));
    av_packet_unref(packet.get());
  }
  if (err != AVERROR_EOF) return AvError(err, "mjpeg encode");
  if (jpeg.empty()) return absl::InternalError("the mjpeg encoder produced no picture");
  return jpeg;
}

absl::Status CheckQuality(int quality) {
  if (quality < 2 || quality > 31) {
    return absl::InvalidArgumentError(absl::StrCat("JPEG quality ", quality, " is outside [2, 31]"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> VideoThumbnailJpeg(const std::string& path, int quality) {
  MAGI_RETURN_IF_ERROR(CheckQuality(quality));
  media_internal::InitFfmpegLogging();
  MAGI_ASSIGN_OR_RETURN(FramePtr decoded, DecodeFirstFrame(path));
  const AVFrame* src = decoded.get();
  const int w = src->width, h = src->height;
  MAGI_ASSIGN_OR_RETURN(auto yuv, NewJpegPicture(w, h));
  // Converts (and expands limited-range video to JPEG's full range) in one swscale pass.
  SwsPtr sws(sws_getContext(w, h, static_cast<AVPixelFormat>(src->format), w, h, AV_PIX_FMT_YUVJ420P,
                            SWS_BICUBIC, nullptr, nullptr, nullptr));
  if (!sws) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot convert its pixel format"));
  sws_scale(sws.get(), src->data, src->linesize, 0, h, yuv->data, yuv->linesize);
  return EncodeJpeg(yuv.get(), quality);
}

absl::StatusOr<std::string> VideoSpritesheetJpeg(const std::string& path, const SpritesheetOptions& options) {
  MAGI_RETURN_IF_ERROR(CheckQuality(options.quality));
  if (options.max_tiles < 1 || options.max_tiles > 256 || options.columns < 1 || options.columns > 64 ||
      options.max_tile_width < 16 || options.max_tile_width > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("spritesheet options out of range: max_tiles ", options.max_tiles,
                                                   " (1..256), columns ", options.columns, " (1..64), max_tile_width ",
                                                   options.max_tile_width, " (16..4096)"));
  }
  media_internal::InitFfmpegLogging();
  // The frame count: the container's, else one counting pass.
  auto v = OpenVideo(path);
  if (!v.ok()) return v.status();
  int64_t frames = v->frames_hint;
  if (frames == 0) {
    MAGI_ASSIGN_OR_RETURN(auto n, DecodeFrames(*v, path, [](int64_t, const AVFrame*) { return true; }));
    frames = n;
    v = OpenVideo(path);
    if (!v.ok()) return v.status();
  }
  if (frames == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": holds no decodable video frame"));
  // Tiles at evenly spaced frames: tile k shows frame floor(k * frames / tiles).
  const int tiles = static_cast<int>(std::min<int64_t>(frames, options.max_tiles));
  const int cols = std::min(tiles, options.columns), rows = (tiles + cols - 1) / cols;
  const int src_w = v->dec->width, src_h = v->dec->height;
  if (src_w <= 0 || src_h <= 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no frame size"));
  // Even tile sizes (4:2:0 chroma), the video's aspect, at most max_tile_width wide.
  int tw = std::min(src_w, options.max_tile_width) & ~1;
  int th = static_cast<int>(static_cast<int64_t>(src_h) * tw / src_w) & ~1;
  tw = std::max(tw, 2);
  th = std::max(th, 2);
  MAGI_ASSIGN_OR_RETURN(auto sheet, NewJpegPicture(cols * tw, rows * th));
  AVFrame* dst = sheet.get();
  // Black background for the empty cells of the last row (full-range YUV black).
  for (int y = 0; y < dst->height; ++y) std::memset(dst->data[0] + y * dst->linesize[0], 0, dst->width);
  for (int p = 1; p < 3; ++p) {
    for (int y = 0; y < dst->height / 2; ++y) std::memset(dst->data[p] + y * dst->linesize[p], 128, dst->width / 2);
  }
  int next = 0;
  SwsPtr sws;
  AVPixelFormat sws_format = AV_PIX_FMT_NONE;
  auto decoded = DecodeFrames(*v, path, [&](int64_t index, const AVFrame* f) {
    if (index != static_cast<int64_t>(next) * frames / tiles) return true;
    if (!sws || f->format != sws_format) {
      sws_format = static_cast<AVPixelFormat>(f->format);
      sws.reset(sws_getContext(f->width, f->height, sws_format, tw, th, AV_PIX_FMT_YUVJ420P, SWS_BICUBIC, nullptr,
                               nullptr, nullptr));
      if (!sws) return false;
    }
    const int x0 = (next % cols) * tw, y0 = (next / cols) * th;
    uint8_t* planes[4] = {dst->data[0] + y0 * dst->linesize[0] + x0,
                          dst->data[1] + (y0 / 2) * dst->linesize[1] + x0 / 2,
                          dst->data[2] + (y0 / 2) * dst->linesize[2] + x0 / 2, nullptr};
    sws_scale(sws.get(), f->data, f->linesize, 0, f->height, planes, dst->linesize);
    return ++next < tiles;
  });
  if (!decoded.ok()) return decoded.status();
  if (!sws) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot convert its pixel format"));
  if (next < tiles) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": decoded ", *decoded, " frames where the container declares ", frames));
  }
  return EncodeJpeg(dst, options.quality);
}

}  // namespace magi
