#include "worker/media/fragmented_mp4_encoder.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/media/h264_encoder.h"
#include "worker/media/mp4_muxer.h"

namespace magi {

using media_internal::H264Encoder;
using media_internal::Mp4Muxer;

absl::StatusOr<std::unique_ptr<FragmentedMp4Encoder>> FragmentedMp4Encoder::Create(
    int width, int height, const VideoEncodeOptions& options) {
  std::unique_ptr<FragmentedMp4Encoder> e(new FragmentedMp4Encoder());
  e->width_ = width;
  e->height_ = height;
  e->options_ = options;
  // The init segment's avcC needs the SPS/PPS, so the first chunk's encoder is opened now.
  MAGI_ASSIGN_OR_RETURN(e->first_encoder_,
                        H264Encoder::Open(width, height, options, /*max_b_frames=*/0,
                                          /*global_header=*/true));
  e->extradata_ = e->first_encoder_->Extradata();
  MAGI_ASSIGN_OR_RETURN(e->muxer_,
                        Mp4Muxer::Open(*e->first_encoder_, options.fps, /*fragmented=*/true));
  return e;
}

FragmentedMp4Encoder::~FragmentedMp4Encoder() = default;

absl::StatusOr<std::string> FragmentedMp4Encoder::Init() {
  if (state_ != State::kCreated) {
    return absl::FailedPreconditionError("fragmented mp4: Init() must be the first call, once");
  }
  absl::Status st = muxer_->WriteHeader();
  if (!st.ok()) {
    state_ = State::kFailed;
    return st;
  }
  state_ = State::kStreaming;
  return muxer_->Take();
}

absl::StatusOr<std::string> FragmentedMp4Encoder::AddChunk(const std::vector<RgbFrame>& frames) {
  if (state_ != State::kStreaming) {
    return absl::FailedPreconditionError(
        state_ == State::kFailed ? "fragmented mp4: AddChunk() after an earlier error"
                                 : "fragmented mp4: AddChunk() needs Init() first and no "
                                   "Finish() before");
  }
  if (frames.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("fragmented mp4: chunk ", chunks_, " has no frames"));
  }
  // Validate every frame before encoding any, so a bad chunk leaves the stream usable.
  for (size_t i = 0; i < frames.size(); ++i) {
    const RgbFrame& f = frames[i];
    if (f.width != width_ || f.height != height_ || f.rgb24.size() != f.ExpectedBytes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fragmented mp4: chunk ", chunks_, " frame ", i, " is ", f.width, "x", f.height,
          " with ", f.rgb24.size(), " bytes; expected ", width_, "x", height_, " with ",
          static_cast<size_t>(width_) * height_ * 3, " bytes of RGB24"));
    }
  }
  absl::StatusOr<std::string> out = EncodeChunk(frames);
  if (!out.ok()) state_ = State::kFailed;
  return out;
}

absl::StatusOr<std::string> FragmentedMp4Encoder::EncodeChunk(
    const std::vector<RgbFrame>& frames) {
  std::unique_ptr<H264Encoder> encoder = std::move(first_encoder_);
  if (!encoder) {
    MAGI_ASSIGN_OR_RETURN(encoder, H264Encoder::Open(width_, height_, options_,
                                                     /*max_b_frames=*/0, /*global_header=*/true));
    // Same parameters give the same SPS/PPS; a mismatch would make the stream undecodable.
    if (encoder->Extradata() != extradata_) {
      return absl::InternalError(absl::StrCat(
          "fragmented mp4: chunk ", chunks_, " encoder produced different SPS/PPS"));
    }
  }
  auto sink = [&](AVPacket* p) { return muxer_->WritePacket(p); };
  for (const RgbFrame& f : frames) {
    MAGI_RETURN_IF_ERROR(encoder->Encode(f, next_pts_++, sink));
  }
  MAGI_RETURN_IF_ERROR(encoder->Flush(sink));
  MAGI_RETURN_IF_ERROR(muxer_->FlushFragment());
  ++chunks_;
  return muxer_->Take();
}

absl::StatusOr<std::string> FragmentedMp4Encoder::Finish() {
  if (state_ != State::kStreaming) {
    return absl::FailedPreconditionError(
        "fragmented mp4: Finish() needs Init() first and may be called once");
  }
  absl::Status st = muxer_->WriteTrailer();
  if (!st.ok()) {
    state_ = State::kFailed;
    return st;
  }
  state_ = State::kFinished;
  return muxer_->Take();
}

}  // namespace magi
