#include "worker/media/fmp4_chunk_writer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/media/fragmented_mp4_encoder.h"

namespace magi {

absl::StatusOr<std::unique_ptr<Fmp4ChunkWriter>> Fmp4ChunkWriter::Create(int width, int height,
                                                                         const VideoEncodeOptions& options) {
  std::unique_ptr<Fmp4ChunkWriter> w(new Fmp4ChunkWriter());
  MAGI_ASSIGN_OR_RETURN(auto encoder, FragmentedMp4Encoder::Create(width, height, options));
  w->encoder_ = std::move(encoder);
  MAGI_ASSIGN_OR_RETURN(auto init, w->encoder_->Init());
  w->init_segment_ = std::move(init);
  return w;
}

Fmp4ChunkWriter::~Fmp4ChunkWriter() = default;

absl::Status Fmp4ChunkWriter::CheckOrder(int index) const {
  if (index != next_index_) {
    return absl::FailedPreconditionError(
        absl::StrCat("fMP4 chunk writer: chunk ", index, " out of order; the next chunk is ", next_index_));
  }
  return absl::OkStatus();
}

absl::Status Fmp4ChunkWriter::ReplayChunk(int index, const std::vector<RgbFrame>& frames) {
  MAGI_RETURN_IF_ERROR(CheckOrder(index));
  MAGI_RETURN_IF_ERROR(encoder_->AddChunk(frames).status());
  ++next_index_;
  return absl::OkStatus();
}

absl::StatusOr<Fmp4Piece> Fmp4ChunkWriter::WriteChunk(int index, const std::vector<RgbFrame>& frames) {
  MAGI_RETURN_IF_ERROR(CheckOrder(index));
  MAGI_ASSIGN_OR_RETURN(auto fragment, encoder_->AddChunk(frames));
  ++next_index_;
  Fmp4Piece piece;
  piece.index = index;
  if (index == 0) piece.init_segment = init_segment_;
  piece.fragment = std::move(fragment);
  piece.frames = static_cast<int>(frames.size());
  return piece;
}

absl::StatusOr<std::string> Fmp4ChunkWriter::Finish() { return encoder_->Finish(); }

}  // namespace magi
