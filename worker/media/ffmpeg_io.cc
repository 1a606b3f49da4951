#include "worker/media/ffmpeg_io.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

extern "C" {
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
}

#include "absl/strings/str_cat.h"

namespace magi {
namespace media_internal {
namespace {
constexpr int kAvioBufferSize = 64 * 1024;
}  // namespace

void InitFfmpegLogging() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const char* env = std::getenv("MAGI_FFMPEG_LOG_LEVEL")) {
      av_log_set_level(std::atoi(env));
    } else if (av_log_get_level() == AV_LOG_INFO) {
      av_log_set_level(AV_LOG_QUIET);
    }
  });
}

std::string AvErrorText(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(err, buf, sizeof(buf));
  return absl::StrCat(buf, " (", err, ")");
}

absl::Status AvError(int err, absl::string_view what) {
  std::string msg = absl::StrCat(what, ": ", AvErrorText(err));
  if (err == AVERROR(ENOMEM)) return absl::ResourceExhaustedError(msg);
  if (err == AVERROR_INVALIDDATA || err == AVERROR_EOF || err == AVERROR_DECODER_NOT_FOUND ||
      err == AVERROR_DEMUXER_NOT_FOUND || err == AVERROR_PATCHWELCOME) {
    return absl::InvalidArgumentError(msg);
  }
  if (err == AVERROR(EINVAL) || err == AVERROR(ERANGE)) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

MemoryReader::MemoryReader(absl::string_view bytes) : bytes_(bytes) {
  auto* buf = static_cast<unsigned char*>(av_malloc(kAvioBufferSize));
  if (buf == nullptr) return;
  avio_ = avio_alloc_context(buf, kAvioBufferSize, /*write_flag=*/0, this, &MemoryReader::Read,
                             nullptr, &MemoryReader::Seek);
  if (avio_ == nullptr) av_free(buf);
}

MemoryReader::~MemoryReader() {
  if (avio_ != nullptr) {
    av_freep(&avio_->buffer);
    avio_context_free(&avio_);
  }
}

int MemoryReader::Read(void* opaque, uint8_t* buf, int size) {
  auto* self = static_cast<MemoryReader*>(opaque);
  const int64_t left = static_cast<int64_t>(self->bytes_.size()) - self->pos_;
  if (left <= 0) return AVERROR_EOF;
  const int n = static_cast<int>(std::min<int64_t>(left, size));
  std::memcpy(buf, self->bytes_.data() + self->pos_, n);
  self->pos_ += n;
  return n;
}

int64_t MemoryReader::Seek(void* opaque, int64_t offset, int whence) {
  auto* self = static_cast<MemoryReader*>(opaque);
  const int64_t size = static_cast<int64_t>(self->bytes_.size());
  whence &= ~AVSEEK_FORCE;
  int64_t target;
  switch (whence) {
    case AVSEEK_SIZE: return size;
    case SEEK_SET: target = offset; break;
    case SEEK_CUR: target = self->pos_ + offset; break;
    case SEEK_END: target = size + offset; break;
    default: return AVERROR(EINVAL);
  }
  if (target < 0 || target > size) return AVERROR(EINVAL);
  self->pos_ = target;
  return target;
}

MemoryWriter::MemoryWriter(bool seekable) {
  auto* buf = static_cast<unsigned char*>(av_malloc(kAvioBufferSize));
  if (buf == nullptr) return;
  avio_ = avio_alloc_context(buf, kAvioBufferSize, /*write_flag=*/1, this, nullptr,
                             &MemoryWriter::Write, seekable ? &MemoryWriter::Seek : nullptr);
  if (avio_ == nullptr) {
    av_free(buf);
    return;
  }
  if (!seekable) avio_->seekable = 0;
}

MemoryWriter::~MemoryWriter() {
  if (avio_ != nullptr) {
    av_freep(&avio_->buffer);
    avio_context_free(&avio_);
  }
}

int MemoryWriter::Write(void* opaque, AvioWriteBuffer buf, int size) {
  auto* self = static_cast<MemoryWriter*>(opaque);
  const int64_t rel = self->pos_ - self->taken_;
  if (rel < 0) return AVERROR(EINVAL);  // seek back into bytes already handed out
  const size_t end = static_cast<size_t>(rel) + size;
  if (end > self->data_.size()) self->data_.resize(end);
  std::memcpy(self->data_.data() + rel, buf, size);
  self->pos_ += size;
  return size;
}

int64_t MemoryWriter::Seek(void* opaque, int64_t offset, int whence) {
  auto* self = static_cast<MemoryWriter*>(opaque);
  const int64_t size = self->taken_ + static_cast<int64_t>(self->data_.size());
  whence &= ~AVSEEK_FORCE;
  int64_t target;
  switch (whence) {
    case AVSEEK_SIZE: return size;
    case SEEK_SET: target = offset; break;
    case SEEK_CUR: target = self->pos_ + offset; break;
    case SEEK_END: target = size + offset; break;
    default: return AVERROR(EINVAL);
  }
  if (target < self->taken_) return AVERROR(EINVAL);
  self->pos_ = target;
  return target;
}

std::string MemoryWriter::Take() {
  if (avio_ != nullptr) avio_flush(avio_);
  std::string out;
  out.swap(data_);
  taken_ += static_cast<int64_t>(out.size());
  if (pos_ < taken_) pos_ = taken_;
  return out;
}

}  // namespace media_internal
}  // namespace magi
