#include "worker/media/filtered_decoder.h"

#include <chrono>
#include <cmath>
#include <cstring>

extern "C" {
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
}

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "worker/media/ffmpeg_io.h"

namespace magi {
namespace media_internal {
namespace {

struct InputDeleter {
  void operator()(AVFormatContext* c) const { avformat_close_input(&c); }
};
using InputPtr = std::unique_ptr<AVFormatContext, InputDeleter>;

struct InOutDeleter {
  void operator()(AVFilterInOut* io) const { avfilter_inout_free(&io); }
};

// Wall-clock budget shared by our loop and libavformat's interrupt callback.
struct Deadline {
  std::chrono::steady_clock::time_point end;
  bool Passed() const { return std::chrono::steady_clock::now() > end; }
  static int Callback(void* opaque) { return static_cast<Deadline*>(opaque)->Passed() ? 1 : 0; }
};

bool InList(const std::vector<std::string>& list, const char* name) {
  if (name == nullptr) return false;
  for (const std::string& s : list) {
    if (s == name) return true;
  }
  return false;
}

// The ffmpeg CLI's get_rotation(): counter-clockwise degrees in [0, 360).
double Rotation(const int32_t* matrix) {
  double theta = 0;
  if (matrix != nullptr) theta = -std::round(av_display_rotation_get(matrix));
  theta -= 360 * std::floor(theta / 360 + 0.9 / 360);
  return theta;
}

const int32_t* DisplayMatrix(const AVStream* st) {
#if LIBAVFORMAT_VERSION_MAJOR >= 61
  const AVPacketSideData* sd = av_packet_side_data_get(
      st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
  if (sd == nullptr || sd->size < 9 * 4) return nullptr;
  return reinterpret_cast<const int32_t*>(sd->data);
#else
  size_t size = 0;
  const uint8_t* data =
      av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (data == nullptr || size < 9 * 4) return nullptr;
  return reinterpret_cast<const int32_t*>(data);
#endif
}

// The filters ffmpeg (5.1) inserts for `autorotate`, as a chain prefix ("" or "...,").
std::string AutorotateFilters(const AVStream* st) {
  const int32_t* m = DisplayMatrix(st);
  if (m == nullptr) return "";
  const double theta = Rotation(m);
  if (std::fabs(theta - 90) < 1.0) return m[3] > 0 ? "transpose=cclock_flip," : "transpose=clock,";
  if (std::fabs(theta - 180) < 1.0) {
    std::string f;
    if (m[0] < 0) f += "hflip,";
    if (m[4] < 0) f += "vflip,";
    return f;
  }
  if (std::fabs(theta - 270) < 1.0) return m[3] < 0 ? "transpose=clock_flip," : "transpose=cclock,";
  if (std::fabs(theta) > 1.0) return absl::StrFormat("rotate=%f*PI/180,", theta);
  if (m[4] < 0) return "vflip,";
  return "";
}

class Decoder {
 public:
  explicit Decoder(const FilteredDecodeRequest& r) : r_(r), who_(r.name) {
    deadline_.end = std::chrono::steady_clock::now() +
                    std::chrono::microseconds(
                        static_cast<int64_t>(r.limits.max_decode_seconds * 1e6));
  }

  absl::StatusOr<std::vector<RgbFrame>> Run();

 private:
  template <typename... Args>
  absl::Status Bad(const Args&... parts) const {
    return absl::InvalidArgumentError(absl::StrCat(who_, ": ", parts...));
  }
  absl::Status Av(int err, absl::string_view what) const {
    return AvError(err, absl::StrCat(who_, ": ", what));
  }
  absl::Status CheckDeadline() const {
    if (!deadline_.Passed()) return absl::OkStatus();
    return absl::DeadlineExceededError(absl::StrCat(
        who_, ": decoding took longer than the limit of ", r_.limits.max_decode_seconds, " s"));
  }
  absl::Status CheckSize(int w, int h, absl::string_view where) const;
  absl::Status Open();
  absl::Status BuildGraph(const AVFrame* first);
  absl::Status HandleFrame(AVFrame* frame);
  absl::Status DecodePacket(const AVPacket* packet);
  absl::Status Pull();
  bool Done() const { return out_.size() >= static_cast<size_t>(r_.max_output_frames) || sink_eof_; }

  const FilteredDecodeRequest& r_;
  std::string who_;
  Deadline deadline_;
  std::unique_ptr<MemoryReader> reader_;
  InputPtr input_;
  AVStream* stream_ = nullptr;
  CodecContextPtr codec_;
  FilterGraphPtr graph_;
  AVFilterContext* src_ = nullptr;
  AVFilterContext* sink_ = nullptr;
  FramePtr frame_;
  FramePtr filtered_;
  int first_w_ = 0, first_h_ = 0, first_fmt_ = -1;
  int64_t ts_offset_ = 0;
  int64_t decoded_ = 0;
  int64_t decode_errors_ = 0;
  int64_t end_pts_ = AV_NOPTS_VALUE;  // last frame's pts + duration
  bool sink_eof_ = false;
  std::vector<RgbFrame> out_;
};

absl::Status Decoder::CheckSize(int w, int h, absl::string_view where) const {
  const MediaLimits& l = r_.limits;
  if (w <= 0 || h <= 0 || w > l.max_width || h > l.max_height ||
      static_cast<int64_t>(w) * h > l.max_pixels) {
    return Bad(where, " is ", w, "x", h, " pixels; allowed are 1..", l.max_width, " wide, 1..",
               l.max_height, " high and at most ", l.max_pixels, " pixels");
  }
  return absl::OkStatus();
}

absl::Status Decoder::Open() {
  const MediaLimits& l = r_.limits;
  if (r_.bytes.empty()) return Bad("empty input (0 bytes); expected ", r_.expected_kind);
  if (static_cast<int64_t>(r_.bytes.size()) > l.max_input_bytes) {
    return Bad("input is ", r_.bytes.size(), " bytes, more than the limit of ",
               l.max_input_bytes, " bytes");
  }
  if (r_.out_width < 1 || r_.out_height < 1 || r_.out_width > l.max_output_width ||
      r_.out_height > l.max_output_height) {
    return Bad("requested output size ", r_.out_width, "x", r_.out_height,
               " is outside 1..", l.max_output_width, " x 1..", l.max_output_height);
  }
  if (r_.max_output_frames < 1 || r_.max_output_frames > l.max_output_frames) {
    return Bad("requested frame count ", r_.max_output_frames, " is outside 1..",
               l.max_output_frames);
  }
  reader_ = std::make_unique<MemoryReader>(r_.bytes);
  if (reader_->avio() == nullptr) return absl::ResourceExhaustedError(who_ + ": out of memory");

  const AVInputFormat* fmt = nullptr;
  int err = av_probe_input_buffer2(reader_->avio(), &fmt, "", nullptr, 0, 0);
  if (err < 0 || fmt == nullptr) {
    return Bad("not ", r_.expected_kind, " (the format is not recognised: ",
               AvErrorText(err), ")");
  }
  if (!InList(r_.demuxers, fmt->name)) {
    return Bad("detected format '", fmt->name, "'; expected ", r_.expected_kind);
  }
  AVFormatContext* raw = avformat_alloc_context();
  if (raw == nullptr) return absl::ResourceExhaustedError(who_ + ": out of memory");
  raw->pb = reader_->avio();
  raw->flags |= AVFMT_FLAG_CUSTOM_IO;
  raw->max_streams = l.max_streams;
  raw->interrupt_callback.callback = &Deadline::Callback;
  raw->interrupt_callback.opaque = &deadline_;
  raw->codec_whitelist = av_strdup(absl::StrJoin(r_.codecs, ",").c_str());
  err = avformat_open_input(&raw, "", fmt, nullptr);  // frees `raw` on failure
  if (err < 0) return Av(err, absl::StrCat("cannot read the ", fmt->name,
                                            " container (truncated or corrupt?)"));
  input_.reset(raw);
  MAGI_RETURN_IF_ERROR(CheckDeadline());

  if (r_.cli_timestamps) {
    // The CLI probes every stream (this fills in start_time); bound the probing decoders.
    std::vector<AVDictionary*> opts(input_->nb_streams, nullptr);
    for (auto& d : opts) {
      av_dict_set_int(&d, "max_pixels", l.max_pixels, 0);
      av_dict_set_int(&d, "threads", 1, 0);
    }
    err = avformat_find_stream_info(input_.get(), opts.empty() ? nullptr : opts.data());
    for (auto& d : opts) av_dict_free(&d);
    MAGI_RETURN_IF_ERROR(CheckDeadline());
    if (err < 0) return Av(err, "cannot read the stream information");
  }

  // ffmpeg's "[0]" input label takes the first video stream; cover art is not a video.
  for (unsigned i = 0; i < input_->nb_streams; ++i) {
    AVStream* st = input_->streams[i];
    if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
        !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      stream_ = st;
      break;
    }
  }
  if (stream_ == nullptr) return Bad("contains no video stream; expected ", r_.expected_kind);
  const AVCodecParameters* par = stream_->codecpar;
  const char* codec_name = avcodec_get_name(par->codec_id);
  if (!InList(r_.codecs, codec_name)) {
    return Bad("codec '", codec_name, "' is not supported; allowed: ",
               absl::StrJoin(r_.codecs, ", "));
  }
  if (par->width != 0 || par->height != 0) {
    MAGI_RETURN_IF_ERROR(CheckSize(par->width, par->height, "the declared picture size"));
  }
  const AVCodec* codec = avcodec_find_decoder(par->codec_id);
  if (codec == nullptr) return Bad("no decoder for codec '", codec_name, "' in this FFmpeg");
  codec_.reset(avcodec_alloc_context3(codec));
  if (!codec_) return absl::ResourceExhaustedError(who_ + ": out of memory");
  err = avcodec_parameters_to_context(codec_.get(), par);
  if (err < 0) return Av(err, "bad codec parameters");
  codec_->pkt_timebase = stream_->time_base;
  // Enforced by libavcodec before it allocates a picture: the decompression-bomb guard.
  codec_->max_pixels = l.max_pixels;
  codec_->thread_count = r_.max_output_frames == 1 ? 1 : 0;
  if (r_.max_output_frames == 1) {
    // Stills: a damaged image is an error, not a half-grey picture.
    codec_->err_recognition |= AV_EF_EXPLODE | AV_EF_CRCCHECK | AV_EF_BITSTREAM;
  }
  err = avcodec_open2(codec_.get(), codec, nullptr);
  if (err < 0) return Av(err, absl::StrCat("cannot open the ", codec_name, " decoder"));

  if (r_.cli_timestamps && input_->start_time != AV_NOPTS_VALUE) {
    // The CLI (without -copyts) shifts all timestamps so the file starts at 0.
    ts_offset_ = -input_->start_time;
  }
  frame_.reset(av_frame_alloc());
  filtered_.reset(av_frame_alloc());
  if (!frame_ || !filtered_) return absl::ResourceExhaustedError(who_ + ": out of memory");
  return absl::OkStatus();
}

absl::Status Decoder::BuildGraph(const AVFrame* first) {
  graph_.reset(avfilter_graph_alloc());
  if (!graph_) return absl::ResourceExhaustedError(who_ + ": out of memory");
  // The CLI passes its default -sws_flags (bicubic) to every scale filter.
  graph_->scale_sws_opts = av_strdup("flags=bicubic");
  graph_->nb_threads = 1;
  AVRational sar = first->sample_aspect_ratio;
  if (sar.num <= 0 || sar.den <= 0) sar = AVRational{0, 1};
  std::string args = absl::StrFormat(
      "video_size=%dx%d:pix_fmt=%d:time_base=%d/%d:pixel_aspect=%d/%d", first->width,
      first->height, first->format, stream_->time_base.num, stream_->time_base.den, sar.num,
      sar.den);
  const AVRational fr = av_guess_frame_rate(input_.get(), stream_, nullptr);
  if (fr.num > 0 && fr.den > 0) absl::StrAppendFormat(&args, ":frame_rate=%d/%d", fr.num, fr.den);
  int err = avfilter_graph_create_filter(&src_, avfilter_get_by_name("buffer"), "in",
                                         args.c_str(), nullptr, graph_.get());
  if (err < 0) return Av(err, "cannot create the filter source");
  err = avfilter_graph_create_filter(&sink_, avfilter_get_by_name("buffersink"), "out", nullptr,
                                     nullptr, graph_.get());
  if (err < 0) return Av(err, "cannot create the filter sink");

  std::string chain;
  if (r_.autorotate) chain += AutorotateFilters(stream_);
  if (r_.cli_timestamps) chain += "trim=starti=0,";  // the CLI's accurate seek for `-ss 0`
  chain += r_.filters;
  chain += ",format=rgb24";

  std::unique_ptr<AVFilterInOut, InOutDeleter> outputs(avfilter_inout_alloc());
  std::unique_ptr<AVFilterInOut, InOutDeleter> inputs(avfilter_inout_alloc());
  if (!outputs || !inputs) return absl::ResourceExhaustedError(who_ + ": out of memory");
  outputs->name = av_strdup("in");
  outputs->filter_ctx = src_;
  outputs->pad_idx = 0;
  inputs->name = av_strdup("out");
  inputs->filter_ctx = sink_;
  inputs->pad_idx = 0;
  AVFilterInOut* in_raw = inputs.release();
  AVFilterInOut* out_raw = outputs.release();
  err = avfilter_graph_parse_ptr(graph_.get(), chain.c_str(), &in_raw, &out_raw, nullptr);
  avfilter_inout_free(&in_raw);
  avfilter_inout_free(&out_raw);
  if (err < 0) return Av(err, absl::StrCat("cannot build the filter chain '", chain, "'"));
  err = avfilter_graph_config(graph_.get(), nullptr);
  if (err < 0) return Av(err, absl::StrCat("cannot configure the filter chain '", chain, "'"));
  if (av_buffersink_get_w(sink_) != r_.out_width || av_buffersink_get_h(sink_) != r_.out_height ||
      av_buffersink_get_format(sink_) != AV_PIX_FMT_RGB24) {
    return absl::InternalError(absl::StrCat(who_, ": filter chain '", chain, "' produces ",
                                            av_buffersink_get_w(sink_), "x",
                                            av_buffersink_get_h(sink_), ", expected ",
                                            r_.out_width, "x", r_.out_height, " rgb24"));
  }
  return absl::OkStatus();
}

absl::Status Decoder::Pull() {
  while (!Done()) {
    const int err = av_buffersink_get_frame(sink_, filtered_.get());
    if (err == AVERROR(EAGAIN)) return absl::OkStatus();
    if (err == AVERROR_EOF) {
      sink_eof_ = true;
      return absl::OkStatus();
    }
    if (err < 0) return Av(err, "filtering failed");
    const AVFrame* f = filtered_.get();
    RgbFrame rgb(r_.out_width, r_.out_height);
    const size_t row = static_cast<size_t>(r_.out_width) * 3;
    for (int y = 0; y < r_.out_height; ++y) {
      std::memcpy(rgb.rgb24.data() + y * row, f->data[0] + static_cast<ptrdiff_t>(y) * f->linesize[0],
                  row);
    }
    av_frame_unref(filtered_.get());
    out_.push_back(std::move(rgb));
  }
  return absl::OkStatus();
}

absl::Status Decoder::HandleFrame(AVFrame* frame) {
  if (++decoded_ > r_.limits.max_decoded_frames) {
    return Bad("more than ", r_.limits.max_decoded_frames, " frames decoded (limit)");
  }
  MAGI_RETURN_IF_ERROR(CheckSize(frame->width, frame->height, "the picture"));
  if (first_fmt_ < 0) {
    first_w_ = frame->width;
    first_h_ = frame->height;
    first_fmt_ = frame->format;
    MAGI_RETURN_IF_ERROR(BuildGraph(frame));
  } else if (frame->width != first_w_ || frame->height != first_h_ ||
             frame->format != first_fmt_) {
    const char* a = av_get_pix_fmt_name(static_cast<AVPixelFormat>(first_fmt_));
    const char* b = av_get_pix_fmt_name(static_cast<AVPixelFormat>(frame->format));
    return Bad("frame ", decoded_ - 1, " changes the picture from ", first_w_, "x", first_h_,
               " ", a ? a : "?", " to ", frame->width, "x", frame->height, " ", b ? b : "?",
               "; mid-stream changes are not supported");
  }
  frame->pts = frame->best_effort_timestamp;
  if (frame->pts != AV_NOPTS_VALUE) {
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 30, 100)
    int64_t duration = frame->duration;
#else
    int64_t duration = frame->pkt_duration;
#endif
    if (duration <= 0) {
      const AVRational fr = av_guess_frame_rate(input_.get(), stream_, nullptr);
      duration = fr.num > 0 && fr.den > 0 ? av_rescale_q(1, av_inv_q(fr), stream_->time_base) : 0;
    }
    end_pts_ = frame->pts + duration;
  }
  const int err = av_buffersrc_add_frame_flags(src_, frame, 0);  // takes the reference
  av_frame_unref(frame);
  if (err < 0) return Av(err, "filtering failed");
  return Pull();
}

absl::Status Decoder::DecodePacket(const AVPacket* packet) {
  int err = avcodec_send_packet(codec_.get(), packet);
  if (err < 0 && err != AVERROR_EOF) {
    if (r_.max_output_frames == 1 || err == AVERROR(ENOMEM)) {
      return Av(err, "the picture data is corrupt or truncated");
    }
    ++decode_errors_;  // the CLI skips undecodable video packets and goes on
    return absl::OkStatus();
  }
  while (!Done()) {
    err = avcodec_receive_frame(codec_.get(), frame_.get());
    if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return absl::OkStatus();
    if (err < 0) {
      if (r_.max_output_frames == 1 || err == AVERROR(ENOMEM)) {
        return Av(err, "the picture data is corrupt or truncated");
      }
      ++decode_errors_;
      continue;
    }
    MAGI_RETURN_IF_ERROR(HandleFrame(frame_.get()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RgbFrame>> Decoder::Run() {
  MAGI_RETURN_IF_ERROR(Open());
  PacketPtr packet(av_packet_alloc());
  if (!packet) return absl::ResourceExhaustedError(who_ + ": out of memory");
  int64_t packets = 0;
  int64_t video_packets = 0;
  bool input_ended = false;
  while (!Done()) {
    MAGI_RETURN_IF_ERROR(CheckDeadline());
    const int err = av_read_frame(input_.get(), packet.get());
    if (err == AVERROR_EOF) {
      input_ended = true;
      break;
    }
    if (err < 0) {
      MAGI_RETURN_IF_ERROR(CheckDeadline());
      return Av(err, absl::StrCat("the file is truncated or corrupt (after ", packets,
                                  " packets)"));
    }
    if (++packets > r_.limits.max_packets) {
      av_packet_unref(packet.get());
      return Bad("more than ", r_.limits.max_packets, " packets (limit)");
    }
    if (packet->stream_index != stream_->index) {
      av_packet_unref(packet.get());
      continue;
    }
    ++video_packets;
    if (packet->flags & AV_PKT_FLAG_CORRUPT) {
      av_packet_unref(packet.get());
      return Bad("the file is truncated or corrupt (video packet ", video_packets,
                 " is incomplete)");
    }
    if (ts_offset_ != 0) {
      const int64_t off = av_rescale_q(ts_offset_, AV_TIME_BASE_Q, stream_->time_base);
      if (packet->pts != AV_NOPTS_VALUE) packet->pts += off;
      if (packet->dts != AV_NOPTS_VALUE) packet->dts += off;
    }
    absl::Status st = DecodePacket(packet.get());
    av_packet_unref(packet.get());
    MAGI_RETURN_IF_ERROR(st);
  }
  // The container's index (MP4 sample table) says how many packets should exist; running
  // out earlier means the upload was cut off.
  if (input_ended && stream_->nb_frames > 0 && video_packets < stream_->nb_frames) {
    return Bad("the file is truncated: only ", video_packets, " of the ", stream_->nb_frames,
               " video packets in its index are present");
  }
  if (!Done()) {
    MAGI_RETURN_IF_ERROR(DecodePacket(nullptr));  // drain delayed frames
  }
  if (src_ == nullptr) {
    if (decode_errors_ > 0) {
      return Bad("no frame could be decoded (", decode_errors_,
                 " corrupt packets); the data is corrupt or truncated");
    }
    return Bad("contains no decodable picture; the data is truncated or empty");
  }
  if (!Done()) {
    // End of input: the CLI closes the source at the end of the last frame (its pts plus
    // duration), which decides how many trailing frames the fps filter emits. Not pushed:
    // Pull() then takes them one at a time and stops at max_output_frames (pushing ran the
    // whole graph at once: a last frame lasting hours became millions of queued duplicates,
    // gigabytes, from a 1.3 kB WebM the fuzzer found).
    int err = av_buffersrc_close(src_, end_pts_ == AV_NOPTS_VALUE ? 0 : end_pts_, 0);
    if (err < 0) return Av(err, "filtering failed");
    MAGI_RETURN_IF_ERROR(Pull());
  }
  if (out_.empty()) return Bad("no frames left after filtering '", r_.filters, "'");
  return std::move(out_);
}

}  // namespace

absl::StatusOr<std::vector<RgbFrame>> DecodeFiltered(const FilteredDecodeRequest& request) {
  InitFfmpegLogging();
  Decoder decoder(request);
  return decoder.Run();
}

}  // namespace media_internal
}  // namespace magi
