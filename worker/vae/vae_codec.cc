#include "worker/vae/vae_codec.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace magi {
namespace {

std::string Shape(at::IntArrayRef s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

}  // namespace

std::optional<LatentRange> EmittedLatentRange(int64_t chunk, const ChunkLayout& layout) {
  const int64_t cw = layout.chunk_width, P = layout.prefix_latent_frames;
  if (cw < 1 || chunk < 0 || P < 0) return std::nullopt;
  LatentRange r{chunk * cw, (chunk + 1) * cw};
  if (P > 0) {
    if (r.end <= P) return std::nullopt;  // all prefix: never emitted
    r.begin = std::max(r.begin, P);
    // i2v keeps its whole first chunk, image frame included (reference video_generate.py).
    if (chunk == 0 && P == 1) r.begin = 0;
  }
  return r;
}

int64_t DecodedFrameCount(int64_t latent_frames, int64_t tile_latent_length, int64_t temporal_factor) {
  if (latent_frames < 1 || tile_latent_length < 1) return 0;
  int64_t frames = 0;
  for (int64_t s = 0; s < latent_frames; s += tile_latent_length) {
    const int64_t n = std::min(tile_latent_length, latent_frames - s);
    frames += n == 1 ? 1 : n * temporal_factor;
  }
  return frames;
}

int64_t DecodeTileLatentLength(const VaeTileOptions& decode_tiles, int64_t patch_length) {
  return patch_length > 0 ? decode_tiles.tile_sample_min_length / patch_length : 0;
}

int64_t ChunkFrameCount(int64_t chunk, const ChunkLayout& layout, const VaeTileOptions& decode_tiles,
                        int64_t patch_length) {
  const auto range = EmittedLatentRange(chunk, layout);
  if (!range) return 0;
  return DecodedFrameCount(range->size(), DecodeTileLatentLength(decode_tiles, patch_length), patch_length);
}

at::Tensor FramesToUint8(const at::Tensor& x) {
  // Python: ((x * 127.5) + 127.5).clamp(0, 255).type(torch.uint8), each op in x's dtype;
  // the uint8 conversion truncates toward zero.
  return ((x * 127.5) + 127.5).clamp(0, 255).to(at::kByte);
}

VaeCodec::VaeCodec(const ViTVae* vae, VaeTileOptions encode_tiles, VaeTileOptions decode_tiles, double scale_factor)
    : vae_(vae), encode_tiles_(encode_tiles), decode_tiles_(decode_tiles), scale_factor_(scale_factor) {}

VaeCodec VaeCodec::ForPipeline(const ViTVae* vae, int fps, double scale_factor) {
  return VaeCodec(vae, VaeTileOptions::ForPipeline(fps), VaeTileOptions::ForPipeline(fps), scale_factor);
}

int64_t VaeCodec::decode_tile_latent_length() const {
  return DecodeTileLatentLength(decode_tiles_, vae_->config().patch_length);
}

absl::StatusOr<at::Tensor> VaeCodec::Encode(const at::Tensor& video) const {
  const VaeConfig& c = vae_->config();
  if (!video.defined() || video.dim() != 5 || video.size(0) < 1 || video.size(1) != c.in_chans) {
    return absl::InvalidArgumentError(absl::StrCat("VAE encode: video must be [B, ", c.in_chans,
                                                   ", T, H, W] with values 0..255, got ",
                                                   video.defined() ? Shape(video.sizes()) : "undefined"));
  }
  MAGI_ASSIGN_OR_RETURN(VaeTilePlan plan, PlanTiledEncode(video.size(2), video.size(3), video.size(4), encode_tiles_,
                                                          c.patch_size, c.patch_length));
  // The trailing temporal tile must still give a latent frame (2-3 frames give none and make
  // the reference fail); say so up front rather than halfway through.
  for (const VaeTile& t : plan.tiles) {
    if (t.t_len != 1 && t.t_len < c.patch_length) {
      return absl::InvalidArgumentError(
          absl::StrCat("VAE encode: ", video.size(2), " frames with tile_sample_min_length ",
                       encode_tiles_.tile_sample_min_length, " leave a last tile of ", t.t_len,
                       " frames, which gives no latent frame (need 1 or >= ", c.patch_length, ")"));
    }
  }
  try {
    // Python: ((video / 127.5) - 1.0) in float32, then .bfloat16() (identity in float32 mode).
    at::Tensor x = ((video.to(vae_->options().device).to(at::kFloat) / 127.5) - 1.0).to(vae_->compute_dtype());
    return RunTiled(x, plan, VaeBlendMode::kEncodeInPlace,
                    [this](const at::Tensor& tile) { return vae_->EncodeTile(tile); });
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("VAE encode failed: ", e.what()));
  }
}

absl::StatusOr<at::Tensor> VaeCodec::EncodePrefix(const at::Tensor& video) const {
  MAGI_ASSIGN_OR_RETURN(at::Tensor z, Encode(video));
  return z * scale_factor_;  // in z's dtype (bf16 in the pipeline)
}

absl::StatusOr<at::Tensor> VaeCodec::DecodeLatent(const at::Tensor& latent) const {
  const VaeConfig& c = vae_->config();
  if (!latent.defined() || latent.dim() != 5 || latent.size(0) < 1 || latent.size(1) != c.z_chans ||
      !at::isFloatingType(latent.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat("VAE decode: latent must be a floating [B, ", c.z_chans,
                                                   ", T, h, w] tensor, got ",
                                                   latent.defined() ? Shape(latent.sizes()) : "undefined"));
  }
  MAGI_ASSIGN_OR_RETURN(VaeTilePlan plan, PlanTiledDecode(latent.size(2), latent.size(3), latent.size(4), decode_tiles_,
                                                          c.patch_size, c.patch_length));
  try {
    at::Tensor z = latent.to(vae_->options().device) / scale_factor_;
    MAGI_ASSIGN_OR_RETURN(at::Tensor out, RunTiled(z, plan, VaeBlendMode::kDecodeRawNeighbours,
                                                   [this](const at::Tensor& tile) { return vae_->DecodeTile(tile); }));
    // "b c t h w -> (b t) c h w"
    return out.permute({0, 2, 1, 3, 4}).reshape({-1, out.size(1), out.size(3), out.size(4)});
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("VAE decode failed: ", e.what()));
  }
}

absl::StatusOr<at::Tensor> VaeCodec::DecodeLatentToUint8(const at::Tensor& latent) const {
  MAGI_ASSIGN_OR_RETURN(at::Tensor x, DecodeLatent(latent));
  try {
    return FramesToUint8(x);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("VAE decode failed: ", e.what()));
  }
}

int64_t VaeCodec::FirstFrameOfChunk(int64_t chunk_index, const ChunkLayout& layout) const {
  int64_t frames = 0;
  for (int64_t k = 0; k < chunk_index; ++k) {
    frames += ChunkFrameCount(k, layout, decode_tiles_, vae_->config().patch_length);
  }
  return frames;
}

absl::StatusOr<DecodedChunk> VaeCodec::DecodeChunk(const at::Tensor& latent, int64_t chunk_index,
                                                   const ChunkLayout& layout) const {
  if (layout.chunk_width < 1 || layout.prefix_latent_frames < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("VAE chunk decode: chunk_width must be >= 1 and the prefix length >= 0, got ", layout.chunk_width,
                     " and ", layout.prefix_latent_frames));
  }
  auto range = EmittedLatentRange(chunk_index, layout);
  if (!range) {
    return absl::InvalidArgumentError(absl::StrCat("VAE chunk decode: chunk ", chunk_index, " lies inside the ",
                                                   layout.prefix_latent_frames,
                                                   "-frame prefix (or is negative) and emits nothing"));
  }
  if (!latent.defined() || latent.dim() != 5) {
    return absl::InvalidArgumentError(absl::StrCat("VAE chunk decode: latent must be [1, z, T, h, w], got ",
                                                   latent.defined() ? Shape(latent.sizes()) : "undefined"));
  }
  at::Tensor emitted;
  const int64_t T = latent.size(2), start = chunk_index * layout.chunk_width;
  if (T == layout.chunk_width) {
    emitted = latent.slice(2, range->begin - start, range->end - start);
  } else if (T == range->size()) {
    emitted = latent;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "VAE chunk decode: chunk ", chunk_index, " latent has ", T, " frames; expected the whole chunk (",
        layout.chunk_width, ") or its emitted frames ", range->begin, "..", range->end - 1, " (", range->size(), ")"));
  }
  MAGI_ASSIGN_OR_RETURN(at::Tensor frames, DecodeLatentToUint8(emitted));
  DecodedChunk out;
  out.frames = frames.to(at::kCPU);
  out.chunk_index = chunk_index;
  out.relative_index = chunk_index - layout.chunk_offset();
  out.first_frame = FirstFrameOfChunk(chunk_index, layout);
  out.latents = *range;
  return out;
}

}  // namespace magi
