#include "worker/media/mp4_muxer.h"

#include "absl/strings/str_cat.h"

namespace magi {
namespace media_internal {

absl::StatusOr<std::unique_ptr<Mp4Muxer>> Mp4Muxer::Open(const H264Encoder& encoder, int fps,
                                                       bool fragmented) {
  std::unique_ptr<Mp4Muxer> m(new Mp4Muxer());
  m->fragmented_ = fragmented;
  // The plain muxer seeks back to patch the mdat size; the fragmented one only appends, which
  // lets Take() hand bytes out as they are produced.
  m->writer_ = std::make_unique<MemoryWriter>(/*seekable=*/!fragmented);
  if (m->writer_->avio() == nullptr) return absl::ResourceExhaustedError("mp4 mux: out of memory");
  int err = avformat_alloc_output_context2(&m->format_, nullptr, "mp4", nullptr);
  if (err < 0 || m->format_ == nullptr) return AvError(err, "mp4 mux: creating the mp4 muxer");
  m->format_->pb = m->writer_->avio();
  m->format_->flags |= AVFMT_FLAG_CUSTOM_IO;
  m->stream_ = avformat_new_stream(m->format_, nullptr);
  if (m->stream_ == nullptr) return absl::ResourceExhaustedError("mp4 mux: out of memory");
  err = avcodec_parameters_from_context(m->stream_->codecpar, encoder.context());
  if (err < 0) return AvError(err, "mp4 mux: copying codec parameters");
  m->codec_time_base_ = encoder.context()->time_base;
  m->stream_->time_base = AVRational{1, fps};
  m->stream_->avg_frame_rate = AVRational{fps, 1};
  m->stream_->r_frame_rate = AVRational{fps, 1};
  return m;
}

Mp4Muxer::~Mp4Muxer() {
  if (format_ != nullptr) {
    format_->pb = nullptr;  // owned by writer_
    avformat_free_context(format_);
  }
}

absl::Status Mp4Muxer::WriteHeader() {
  AVDictionary* opts = nullptr;
  if (fragmented_) {
    // frag_custom: a fragment ends exactly where we call FlushFragment (one per chunk);
    // empty_moov: the init segment carries no samples so playback can start after it;
    // default_base_moof: offsets relative to each moof, so fragments are self-contained
    // (what MSE players expect).
    av_dict_set(&opts, "movflags", "frag_custom+empty_moov+default_base_moof", 0);
  }
  const int err = avformat_write_header(format_, &opts);
  av_dict_free(&opts);
  if (err < 0) return AvError(err, "mp4 mux: writing the header");
  header_written_ = true;
  return absl::OkStatus();
}

absl::Status Mp4Muxer::WritePacket(AVPacket* packet) {
  packet->stream_index = stream_->index;
  av_packet_rescale_ts(packet, codec_time_base_, stream_->time_base);
  const int err = av_write_frame(format_, packet);
  if (err < 0) return AvError(err, "mp4 mux: writing a packet");
  return absl::OkStatus();
}

absl::Status Mp4Muxer::FlushFragment() {
  const int err = av_write_frame(format_, nullptr);
  if (err < 0) return AvError(err, "mp4 mux: closing a fragment");
  return absl::OkStatus();
}

absl::Status Mp4Muxer::WriteTrailer() {
  const int err = av_write_trailer(format_);
  if (err < 0) return AvError(err, "mp4 mux: writing the trailer");
  return absl::OkStatus();
}

}  // namespace media_internal
}  // namespace magi
