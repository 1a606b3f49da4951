// Internal to magi_media: RAII owners for FFmpeg objects, FFmpeg error text, and the two
// in-memory AVIOContexts the library uses instead of files (a bounded reader over an upload,
// a growable writer for MP4 bytes). Not part of the library's public interface.
//
// Thread safety: the FFmpeg objects are single-threaded; each owner belongs to one call.
#ifndef MAGI_WORKER_MEDIA_FFMPEG_IO_H_
#define MAGI_WORKER_MEDIA_FFMPEG_IO_H_

#include <cstdint>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include "absl/status/status.h"

namespace magi {
namespace media_internal {

// The write_packet callback signature changed in libavformat 61 (toolchain notes §4).
#if LIBAVFORMAT_VERSION_MAJOR >= 61
using AvioWriteBuffer = const uint8_t*;
#else
using AvioWriteBuffer = uint8_t*;
#endif

// Silences FFmpeg's own stderr logging (x264 statistics, decoder messages on bad uploads)
// once per process, unless the application already chose a level other than the default:
// every problem reaches the caller as a status instead. MAGI_FFMPEG_LOG_LEVEL=<integer
// AV_LOG_* value> overrides (e.g. 32 for info, 48 for debug).
void InitFfmpegLogging();

// "Invalid data found when processing input (-1094995529)".
std::string AvErrorText(int err);
// Maps an FFmpeg error to a status whose message is "<what>: <ffmpeg text>".
absl::Status AvError(int err, absl::string_view what);

struct CodecContextDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
struct FilterGraphDeleter {
  void operator()(AVFilterGraph* g) const { avfilter_graph_free(&g); }
};
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;
using FilterGraphPtr = std::unique_ptr<AVFilterGraph, FilterGraphDeleter>;

// An AVIOContext reading (and seeking) a caller-owned byte range. The bytes must outlive
// the object. Owns the AVIOContext and its buffer.
class MemoryReader {
 public:
  explicit MemoryReader(absl::string_view bytes);
  ~MemoryReader();
  MemoryReader(const MemoryReader&) = delete;
  MemoryReader& operator=(const MemoryReader&) = delete;

  // nullptr if allocation failed.
  AVIOContext* avio() const { return avio_; }

 private:
  static int Read(void* opaque, uint8_t* buf, int size);
  static int64_t Seek(void* opaque, int64_t offset, int whence);

  absl::string_view bytes_;
  int64_t pos_ = 0;
  AVIOContext* avio_ = nullptr;
};

// An AVIOContext writing into a growable std::string, seekable (the plain MP4 muxer goes back
// to patch box sizes). Take() moves out everything written since the last Take(); only use
// it when no later seek can reach back before that point (fragmented output).
class MemoryWriter {
 public:
  explicit MemoryWriter(bool seekable);
  ~MemoryWriter();
  MemoryWriter(const MemoryWriter&) = delete;
  MemoryWriter& operator=(const MemoryWriter&) = delete;

  AVIOContext* avio() const { return avio_; }
  // Flushes the AVIO buffer and returns the bytes written since the previous Take().
  std::string Take();

 private:
  static int Write(void* opaque, AvioWriteBuffer buf, int size);
  static int64_t Seek(void* opaque, int64_t offset, int whence);

  std::string data_;
  int64_t pos_ = 0;      // absolute write position
  int64_t taken_ = 0;    // absolute offset of data_[0]
  AVIOContext* avio_ = nullptr;
};

}  // namespace media_internal
}  // namespace magi

#endif  // MAGI_WORKER_MEDIA_FFMPEG_IO_H_
