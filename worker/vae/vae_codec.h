// The VAE as the pipeline uses it (spec pipeline.md §1.2-1.4, §2.7, §5.5-5.6, §6):
// prefix encoding of RGB frames to scaled latents, and decoding of each emitted latent chunk
// to uint8 RGB frames as soon as that chunk is clean.
//
// VaeCodec borrows a ViTVae (not owned; it must outlive the codec) and holds the tiling
// options and scale factor. All methods are const and thread-safe (the model is).
#ifndef MAGI_WORKER_VAE_VAE_CODEC_H_
#define MAGI_WORKER_VAE_VAE_CODEC_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "worker/vae/vae_tiling.h"
#include "worker/vae/vit_vae.h"

namespace magi {

// Where a run's latent chunks come from: chunk_width latent frames per chunk and the
// prefix's latent length (0 for t2v, 1 for i2v, the encoded clip's length for v2v).
struct ChunkLayout {
  int64_t chunk_width = 6;
  int64_t prefix_latent_frames = 0;
  // Chunks that are all prefix are never denoised nor emitted: prefix // chunk_width.
  int64_t chunk_offset() const { return chunk_width > 0 ? prefix_latent_frames / chunk_width : 0; }
};

// The absolute latent frames [begin, end) the reference emits for chunk `chunk`
// (spec §2.7): the whole chunk without a prefix; from the prefix's end in a partly-prefix
// chunk (v2v); the whole first chunk, image frame included, for a 1-frame prefix (i2v);
// nothing (nullopt) for a chunk that lies inside the prefix.
struct LatentRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
std::optional<LatentRange> EmittedLatentRange(int64_t chunk, const ChunkLayout& layout);

// Video frames that decoding `latent_frames` yields with temporal decode tiles of
// `tile_latent_length`: 4 per latent frame (temporal_factor), but a trailing 1-frame tile
// yields a single frame (v2v's 4-latent chunk -> 12 + 1 = 13 frames).
int64_t DecodedFrameCount(int64_t latent_frames, int64_t tile_latent_length, int64_t temporal_factor);

// Latent frames per temporal decode tile: decode_tiles.tile_sample_min_length / patch_length.
int64_t DecodeTileLatentLength(const VaeTileOptions& decode_tiles, int64_t patch_length);

// Video frames VaeCodec::DecodeChunk yields for chunk `chunk` (0 for one that emits nothing),
// for decode tiles `decode_tiles` and a VAE of temporal factor `patch_length` -- known without
// a VAE, so ranks that load none (rank-group followers) count a run's frames as the decoding
// rank does: v2v's partly-prefix chunk of 4 latent frames at 24 fps gives 13, not 16.
int64_t ChunkFrameCount(int64_t chunk, const ChunkLayout& layout, const VaeTileOptions& decode_tiles,
                        int64_t patch_length);

// One decoded chunk, ready for the encoder/stream.
struct DecodedChunk {
  at::Tensor frames;           // uint8 [F, 3, H, W] on the CPU
  int64_t chunk_index = 0;     // absolute chunk index in the latent state
  int64_t relative_index = 0;  // chunk_index - chunk_offset (what the reference's walker yields)
  int64_t first_frame = 0;     // index of frames[0] in the output video
  LatentRange latents;         // the absolute latent frames decoded
};

class VaeCodec {
 public:
  // `vae` must outlive the codec. Tile options: see VaeTileOptions::ForPipeline(fps).
  VaeCodec(const ViTVae* vae, VaeTileOptions encode_tiles, VaeTileOptions decode_tiles, double scale_factor);
  // The pipeline's codec for `fps` (tile length fps // 2) and scale factor (0.18215).
  static VaeCodec ForPipeline(const ViTVae* vae, int fps, double scale_factor);

  // VaeHelper.encode: `video` [B, 3, T, H, W] with values 0..255 (uint8 or float) ->
  // posterior mean z [B, z, T', H/8, W/8] in the compute dtype, via video / 127.5 - 1 in
  // float32 then the compute dtype, tiled and blended in place.
  absl::StatusOr<at::Tensor> Encode(const at::Tensor& video) const;
  // encode_prefix_video: Encode(video) * scale_factor (in the compute dtype) - the prefix
  // latent the DiT takes.
  absl::StatusOr<at::Tensor> EncodePrefix(const at::Tensor& video) const;

  // VaeHelper.decode(latent / scale_factor, uint8_output=false): `latent` [B, z, T, h, w]
  // (float32 chunk from the sampler) -> [(B T), 3, H, W] in the compute dtype.
  absl::StatusOr<at::Tensor> DecodeLatent(const at::Tensor& latent) const;
  // The same with uint8 output: x * 127.5 + 127.5 in the decoder's dtype, clamp to [0, 255],
  // truncation to uint8 (spec §5.6).
  absl::StatusOr<at::Tensor> DecodeLatentToUint8(const at::Tensor& latent) const;

  // Decodes what the reference emits for chunk `chunk_index`: `latent` is either the whole
  // chunk ([1, z, chunk_width, h, w], the state's frames chunk_index * chunk_width ...) or
  // exactly the emitted range (EmittedLatentRange). Errors: InvalidArgument for a chunk that
  // emits nothing or a latent of another length, naming both.
  absl::StatusOr<DecodedChunk> DecodeChunk(const at::Tensor& latent, int64_t chunk_index,
                                           const ChunkLayout& layout) const;

  // Output frame index of the first frame chunk `chunk_index` emits (sum over the chunks
  // emitted before it).
  int64_t FirstFrameOfChunk(int64_t chunk_index, const ChunkLayout& layout) const;
  // Latent frames per temporal decode tile (tile_sample_min_length / patch_length).
  int64_t decode_tile_latent_length() const;

  const ViTVae& vae() const { return *vae_; }
  double scale_factor() const { return scale_factor_; }
  const VaeTileOptions& encode_tiles() const { return encode_tiles_; }
  const VaeTileOptions& decode_tiles() const { return decode_tiles_; }

 private:
  const ViTVae* vae_;
  VaeTileOptions encode_tiles_, decode_tiles_;
  double scale_factor_;
};

// The reference's uint8 conversion of decoded frames, in `x`'s own dtype.
at::Tensor FramesToUint8(const at::Tensor& x);

}  // namespace magi

#endif  // MAGI_WORKER_VAE_VAE_CODEC_H_
