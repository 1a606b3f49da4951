#include "worker/media/video_thumbnail.h"

#include "absl/strings/str_cat.h"
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

// Decodes the first frame of the best video stream.
absl::StatusOr<FramePtr> DecodeFirstFrame(const std::string& path) {
  AVFormatContext* raw = nullptr;
  int err = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (err == AVERROR(ENOENT)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  if (err < 0) return AvError(err, absl::StrCat(path, ": cannot open"));
  FormatPtr format(raw);
  if ((err = avformat_find_stream_info(format.get(), nullptr)) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read stream info: ", media_internal::AvErrorText(err)));
  }
  const int stream = av_find_best_stream(format.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (stream < 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no video stream"));
  const AVCodecParameters* par = format->streams[stream]->codecpar;
  const AVCodec* codec = avcodec_find_decoder(par->codec_id);
  if (codec == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no decoder for ", avcodec_get_name(par->codec_id)));
  }
  CodecContextPtr dec(avcodec_alloc_context3(codec));
  if (!dec) return absl::ResourceExhaustedError("cannot allocate a decoder");
  if ((err = avcodec_parameters_to_context(dec.get(), par)) < 0) return AvError(err, "decoder parameters");
  if ((err = avcodec_open2(dec.get(), codec, nullptr)) < 0) return AvError(err, "open decoder");
  PacketPtr packet(av_packet_alloc());
  FramePtr frame(av_frame_alloc());
  if (!packet || !frame) return absl::ResourceExhaustedError("cannot allocate a frame");
  bool flushing = false;
  while (true) {
    err = avcodec_receive_frame(dec.get(), frame.get());
    if (err == 0) return std::move(frame);
    if (err != AVERROR(EAGAIN) || flushing) break;
    err = av_read_frame(format.get(), packet.get());
    if (err == AVERROR_EOF) {
      flushing = true;
      avcodec_send_packet(dec.get(), nullptr);
      continue;
    }
    if (err < 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": read error: ", media_internal::AvErrorText(err)));
    }
    if (packet->stream_index == stream) {
      err = avcodec_send_packet(dec.get(), packet.get());
      if (err < 0 && err != AVERROR(EAGAIN)) {
        av_packet_unref(packet.get());
        return absl::InvalidArgumentError(absl::StrCat(path, ": undecodable video: ", media_internal::AvErrorText(err)));
      }
    }
    av_packet_unref(packet.get());
  }
  return absl::InvalidArgumentError(absl::StrCat(path, ": holds no decodable video frame"));
}

}  // namespace

absl::StatusOr<std::string> VideoThumbnailJpeg(const std::string& path, int quality) {
  if (quality < 2 || quality > 31) {
    return absl::InvalidArgumentError(absl::StrCat("thumbnail quality ", quality, " is outside [2, 31]"));
  }
  media_internal::InitFfmpegLogging();
  absl::StatusOr<FramePtr> decoded = DecodeFirstFrame(path);
  if (!decoded.ok()) return decoded.status();
  const AVFrame* src = decoded->get();
  const int w = src->width, h = src->height;

  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
  if (codec == nullptr) return absl::InternalError("this FFmpeg build has no mjpeg encoder");
  CodecContextPtr enc(avcodec_alloc_context3(codec));
  if (!enc) return absl::ResourceExhaustedError("cannot allocate the mjpeg encoder");
  enc->width = w;
  enc->height = h;
  enc->pix_fmt = AV_PIX_FMT_YUVJ420P;  // full range: what JPEG viewers expect
  enc->time_base = AVRational{1, 25};
  enc->flags |= AV_CODEC_FLAG_QSCALE;
  enc->global_quality = FF_QP2LAMBDA * quality;
  int err = avcodec_open2(enc.get(), codec, nullptr);
  if (err < 0) return AvError(err, "open mjpeg encoder");

  FramePtr yuv(av_frame_alloc());
  if (!yuv) return absl::ResourceExhaustedError("cannot allocate a frame");
  yuv->format = AV_PIX_FMT_YUVJ420P;
  yuv->width = w;
  yuv->height = h;
  if ((err = av_frame_get_buffer(yuv.get(), 0)) < 0) return AvError(err, "thumbnail frame");
  // Converts (and expands limited-range video to JPEG's full range) in one swscale pass.
  SwsPtr sws(sws_getContext(w, h, static_cast<AVPixelFormat>(src->format), w, h, AV_PIX_FMT_YUVJ420P,
                            SWS_BICUBIC, nullptr, nullptr, nullptr));
  if (!sws) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot convert its pixel format"));
  sws_scale(sws.get(), src->data, src->linesize, 0, h, yuv->data, yuv->linesize);
  yuv->quality = enc->global_quality;
  yuv->pts = 0;

  PacketPtr packet(av_packet_alloc());
  if (!packet) return absl::ResourceExhaustedError("cannot allocate a packet");
  if ((err = avcodec_send_frame(enc.get(), yuv.get())) < 0) return AvError(err, "mjpeg encode");
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

}  // namespace magi
