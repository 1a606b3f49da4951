// Tiled VAE encode and decode as the reference's TileProcessor does them (spec pipeline.md
// §5.5-5.6; inference/infra/parallelism/tile_parallel.py): the input is cut into
// overlapping tiles in raster order (t, then h, then w), each tile goes through the model
// on its own, each result is blended with its earlier neighbours (t, then upper, then
// left), cropped, and the crops are concatenated (w, then h, then t).
//
// The two passes differ in how they blend, and this is kept exactly:
//  * encode blends IN PLACE with eager tensor ops (each multiply and the add round to the
//    tile's dtype), so a later tile's neighbour is the already-blended tile;
//  * decode blends a copy of the tile against the RAW decoded neighbours, with the mix
//    computed in float32 and rounded once (the reference compiles that blend).
//
// Memory: tiles are produced one at a time and only the neighbours a later tile still needs
// are kept (the previous row, plus the previous temporal layer when there is a temporal
// overlap), so a pass needs its output plus about one row of tiles, for any size.
//
// Everything here is a pure function of its arguments; thread-safe.
#ifndef MAGI_WORKER_VAE_VAE_TILING_H_
#define MAGI_WORKER_VAE_VAE_TILING_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace magi {

// The keyword arguments of the reference's VaeHelper.encode/decode.
struct VaeTileOptions {
  int64_t tile_sample_min_height = 256;  // pixels
  int64_t tile_sample_min_width = 256;   // pixels
  int64_t tile_sample_min_length = 16;   // frames
  double spatial_tile_overlap_factor = 0.25;
  double temporal_tile_overlap_factor = 0.0;
  // false: one tile spans the whole frame (the reference sets the tile size to 100000).
  bool allow_spatial_tiling = true;

  // The reference pipeline's settings (encode_prefix_video / decode_chunk): 256x256 tiles,
  // fps // 2 frames long, 25% spatial overlap, none in time.
  static VaeTileOptions ForPipeline(int fps);
  // InvalidArgument naming the field for sizes < 1 or overlaps outside [0, 1).
  absl::Status Validate() const;
};

// One tile: its grid position and the window of the input it reads.
struct VaeTile {
  int64_t f = 0, i = 0, j = 0;  // index along t, h, w
  int64_t t0 = 0, t_len = 0;    // input window (clipped to the input)
  int64_t h0 = 0, h_len = 0;
  int64_t w0 = 0, w_len = 0;
};

// The tiling of one input, with the reference's arithmetic.
struct VaeTilePlan {
  int64_t num_t = 0, num_h = 0, num_w = 0;           // tiles per axis
  int64_t tile_t = 0, tile_h = 0, tile_w = 0;        // input-space tile size
  int64_t stride_t = 0, stride_h = 0, stride_w = 0;  // input-space tile stride
  int64_t blend_t = 0, blend_h = 0, blend_w = 0;     // output-space blend extent
  int64_t limit_t = 0, limit_h = 0, limit_w = 0;     // output-space crop of each tile
  std::vector<VaeTile> tiles;                        // raster order (t, h, w)
};

// Encode tiling of pixels (T, H, W) for a VAE with the given downsample factors
// (spatial = patch_size, temporal = patch_length). Errors: options that give a zero stride
// or an empty input, naming the field.
absl::StatusOr<VaeTilePlan> PlanTiledEncode(int64_t T, int64_t H, int64_t W, const VaeTileOptions& options,
                                            int64_t spatial_factor, int64_t temporal_factor);
// Decode tiling of latents (T', H', W').
absl::StatusOr<VaeTilePlan> PlanTiledDecode(int64_t T, int64_t H, int64_t W, const VaeTileOptions& options,
                                            int64_t spatial_factor, int64_t temporal_factor);

enum class VaeBlendMode {
  kEncodeInPlace,        // eager ops in the tile dtype, neighbours already blended
  kDecodeRawNeighbours,  // float32 mix rounded once, neighbours as decoded
};

// Runs `tile_fn` on every tile of `x` ([B, C, T, H, W], the plan's input) in raster order
// and returns the blended, cropped, concatenated result. `tile_fn` gets a view of the tile
// and returns its [B, C', T', H', W'] result; its error is returned as is. A result whose
// batch or channel count differs from the first tile's is an Internal error.
using VaeTileFn = std::function<absl::StatusOr<at::Tensor>(const at::Tensor& tile)>;
absl::StatusOr<at::Tensor> RunTiled(const at::Tensor& x, const VaeTilePlan& plan, VaeBlendMode mode,
                                    const VaeTileFn& tile_fn);

// The reference's blends of `b`'s leading slices along `dim` with `a`'s trailing ones over
// min(a.size(dim), b.size(dim), extent) slices: b[k] = a[-e + k] * (1 - k/e) + b[k] * (k/e).
// Exposed for tests.
void BlendEagerInPlace(const at::Tensor& a, at::Tensor& b, int64_t dim, int64_t extent);
void BlendFusedInPlace(const at::Tensor& a, at::Tensor& b, int64_t dim, int64_t extent);

}  // namespace magi

#endif  // MAGI_WORKER_VAE_VAE_TILING_H_
