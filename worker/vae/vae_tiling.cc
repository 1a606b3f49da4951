#include "worker/vae/vae_tiling.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace magi {
namespace {

// The reference disables spatial tiling by asking for tiles of this size.
constexpr int64_t kUntiledSize = 100000;

// Python's int(n * factor) for a non-negative product.
int64_t Trunc(int64_t n, double factor) { return static_cast<int64_t>(static_cast<double>(n) * factor); }

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

absl::Status CheckExtent(const char* what, int64_t T, int64_t H, int64_t W) {
  if (T < 1 || H < 1 || W < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("VAE tiling: the ", what, " must have T, H, W >= 1, got ", T, " x ", H, " x ", W));
  }
  return absl::OkStatus();
}

absl::Status CheckStride(const char* field, int64_t stride, int64_t tile, double overlap) {
  if (stride < 1) {
    return absl::InvalidArgumentError(absl::StrCat("VAE tiling: ", field, " ", tile, " with overlap ", overlap,
                                                   " gives a tile stride of 0; use larger tiles"));
  }
  return absl::OkStatus();
}

void FillTiles(VaeTilePlan& p, int64_t T, int64_t H, int64_t W) {
  p.num_t = CeilDiv(T, p.stride_t);
  p.num_h = CeilDiv(H, p.stride_h);
  p.num_w = CeilDiv(W, p.stride_w);
  p.tiles.clear();
  p.tiles.reserve(p.num_t * p.num_h * p.num_w);
  for (int64_t f = 0; f < p.num_t; ++f) {
    for (int64_t i = 0; i < p.num_h; ++i) {
      for (int64_t j = 0; j < p.num_w; ++j) {
        VaeTile t;
        t.f = f, t.i = i, t.j = j;
        t.t0 = f * p.stride_t, t.t_len = std::min(T, t.t0 + p.tile_t) - t.t0;
        t.h0 = i * p.stride_h, t.h_len = std::min(H, t.h0 + p.tile_h) - t.h0;
        t.w0 = j * p.stride_w, t.w_len = std::min(W, t.w0 + p.tile_w) - t.w0;
        p.tiles.push_back(t);
      }
    }
  }
}

std::string Shape(at::IntArrayRef s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

}  // namespace

VaeTileOptions VaeTileOptions::ForPipeline(int fps) {
  VaeTileOptions o;
  o.tile_sample_min_height = 256;
  o.tile_sample_min_width = 256;
  o.tile_sample_min_length = fps / 2;
  o.spatial_tile_overlap_factor = 0.25;
  o.temporal_tile_overlap_factor = 0.0;
  o.allow_spatial_tiling = true;
  return o;
}

absl::Status VaeTileOptions::Validate() const {
  auto positive = [](const char* field, int64_t v) -> absl::Status {
    if (v < 1 || v > kUntiledSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("VAE tiling: ", field, " must be in [1, ", kUntiledSize, "], got ", v));
    }
    return absl::OkStatus();
  };
  MAGI_RETURN_IF_ERROR(positive("tile_sample_min_height", tile_sample_min_height));
  MAGI_RETURN_IF_ERROR(positive("tile_sample_min_width", tile_sample_min_width));
  MAGI_RETURN_IF_ERROR(positive("tile_sample_min_length", tile_sample_min_length));
  for (auto [field, v] : {std::pair<const char*, double>{"spatial_tile_overlap_factor", spatial_tile_overlap_factor},
                          {"temporal_tile_overlap_factor", temporal_tile_overlap_factor}}) {
    if (!(v >= 0.0 && v < 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat("VAE tiling: ", field, " must be in [0, 1), got ", v));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<VaeTilePlan> PlanTiledEncode(int64_t T, int64_t H, int64_t W, const VaeTileOptions& o,
                                            int64_t spatial_factor, int64_t temporal_factor) {
  MAGI_RETURN_IF_ERROR(o.Validate());
  MAGI_RETURN_IF_ERROR(CheckExtent("video", T, H, W));
  if (spatial_factor < 1 || temporal_factor < 1)
    return absl::InvalidArgumentError("VAE tiling: bad downsample factors");
  const double so = o.spatial_tile_overlap_factor, to = o.temporal_tile_overlap_factor;
  VaeTilePlan p;
  p.tile_h = o.allow_spatial_tiling ? o.tile_sample_min_height : kUntiledSize;
  p.tile_w = o.allow_spatial_tiling ? o.tile_sample_min_width : kUntiledSize;
  p.tile_t = o.tile_sample_min_length;
  const int64_t lat_h = p.tile_h / spatial_factor, lat_w = p.tile_w / spatial_factor;
  const int64_t lat_t = p.tile_t / temporal_factor;
  p.stride_h = Trunc(p.tile_h, 1 - so);
  p.stride_w = Trunc(p.tile_w, 1 - so);
  p.stride_t = Trunc(p.tile_t, 1 - to);
  MAGI_RETURN_IF_ERROR(CheckStride("tile_sample_min_height", p.stride_h, p.tile_h, so));
  MAGI_RETURN_IF_ERROR(CheckStride("tile_sample_min_width", p.stride_w, p.tile_w, so));
  MAGI_RETURN_IF_ERROR(CheckStride("tile_sample_min_length", p.stride_t, p.tile_t, to));
  p.blend_h = Trunc(lat_h, so);
  p.blend_w = Trunc(lat_w, so);
  p.blend_t = Trunc(lat_t, to);
  p.limit_h = lat_h - p.blend_h;
  p.limit_w = lat_w - p.blend_w;
  p.limit_t = lat_t - p.blend_t;
  FillTiles(p, T, H, W);
  return p;
}

absl::StatusOr<VaeTilePlan> PlanTiledDecode(int64_t T, int64_t H, int64_t W, const VaeTileOptions& o,
                                            int64_t spatial_factor, int64_t temporal_factor) {
  MAGI_RETURN_IF_ERROR(o.Validate());
  MAGI_RETURN_IF_ERROR(CheckExtent("latent", T, H, W));
  if (spatial_factor < 1 || temporal_factor < 1)
    return absl::InvalidArgumentError("VAE tiling: bad downsample factors");
  const double so = o.spatial_tile_overlap_factor, to = o.temporal_tile_overlap_factor;
  VaeTilePlan p;
  const int64_t sample_h = o.allow_spatial_tiling ? o.tile_sample_min_height : kUntiledSize;
  const int64_t sample_w = o.allow_spatial_tiling ? o.tile_sample_min_width : kUntiledSize;
  p.tile_h = sample_h / spatial_factor;
  p.tile_w = sample_w / spatial_factor;
  p.tile_t = o.tile_sample_min_length / temporal_factor;
  if (p.tile_h < 1 || p.tile_w < 1 || p.tile_t < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VAE tiling: decode tiles must cover at least one latent: tile_sample_min_height/width >= ", spatial_factor,
        " and tile_sample_min_length >= ", temporal_factor, ", got ", sample_h, " x ", sample_w, " x ",
        o.tile_sample_min_length));
  }
  p.stride_h = Trunc(p.tile_h, 1 - so);
  p.stride_w = Trunc(p.tile_w, 1 - so);
  p.stride_t = Trunc(p.tile_t, 1 - to);
  MAGI_RETURN_IF_ERROR(CheckStride("tile_sample_min_height", p.stride_h, sample_h, so));
  MAGI_RETURN_IF_ERROR(CheckStride("tile_sample_min_width", p.stride_w, sample_w, so));
  MAGI_RETURN_IF_ERROR(CheckStride("tile_sample_min_length", p.stride_t, o.tile_sample_min_length, to));
  const int64_t real_h = p.tile_h * spatial_factor, real_w = p.tile_w * spatial_factor;
  const int64_t real_t = p.tile_t * temporal_factor;
  p.blend_h = Trunc(real_h, so);
  p.blend_w = Trunc(real_w, so);
  p.blend_t = Trunc(real_t, to);
  p.limit_h = real_h - p.blend_h;
  p.limit_w = real_w - p.blend_w;
  p.limit_t = real_t - p.blend_t;
  FillTiles(p, T, H, W);
  return p;
}

void BlendEagerInPlace(const at::Tensor& a, at::Tensor& b, int64_t dim, int64_t extent) {
  const int64_t e = std::min({a.size(dim), b.size(dim), extent});
  for (int64_t y = 0; y < e; ++y) {
    // Python: a[..., -e + y] * (1 - y / e) + b[..., y] * (y / e), one rounding per op.
    const double w = static_cast<double>(y) / static_cast<double>(e);
    at::Tensor mixed = a.select(dim, a.size(dim) - e + y) * (1.0 - w) + b.select(dim, y) * w;
    b.select(dim, y).copy_(mixed);
  }
}

void BlendFusedInPlace(const at::Tensor& a, at::Tensor& b, int64_t dim, int64_t extent) {
  const int64_t e = std::min({a.size(dim), b.size(dim), extent});
  if (e <= 0) return;
  std::vector<float> wa(e), wb(e);
  for (int64_t y = 0; y < e; ++y) {
    const double w = static_cast<double>(y) / static_cast<double>(e);
    wa[y] = static_cast<float>(1.0 - w);
    wb[y] = static_cast<float>(w);
  }
  std::vector<int64_t> shape(b.dim(), 1);
  shape[dim] = e;
  at::Tensor ta = at::tensor(wa).to(b.device()).view(shape);
  at::Tensor tb = at::tensor(wb).to(b.device()).view(shape);
  at::Tensor b_head = b.narrow(dim, 0, e);
  at::Tensor pa = a.narrow(dim, a.size(dim) - e, e).to(at::kFloat) * ta;
  at::Tensor pb = b_head.to(at::kFloat) * tb;
  if (b.scalar_type() != at::kFloat) {
    // The reference's roundings in a reduced dtype: each product, then the sum (as eager).
    pa = pa.to(b.scalar_type()).to(at::kFloat);
    pb = pb.to(b.scalar_type()).to(at::kFloat);
  }
  b_head.copy_(pa + pb);  // the rounding of the sum to b's dtype
}

absl::StatusOr<at::Tensor> RunTiled(const at::Tensor& x, const VaeTilePlan& plan, VaeBlendMode mode,
                                    const VaeTileFn& tile_fn) {
  if (!x.defined() || x.dim() != 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("VAE tiling: input must be [B, C, T, H, W], got ", x.defined() ? Shape(x.sizes()) : "undefined"));
  }
  const size_t expected = static_cast<size_t>(plan.num_t * plan.num_h * plan.num_w);
  if (plan.tiles.size() != expected || expected == 0) {
    return absl::InvalidArgumentError("VAE tiling: the plan's tile list does not match its tile counts");
  }
  for (const VaeTile& t : plan.tiles) {
    if (t.t0 + t.t_len > x.size(2) || t.h0 + t.h_len > x.size(3) || t.w0 + t.w_len > x.size(4) || t.t_len < 1 ||
        t.h_len < 1 || t.w_len < 1) {
      return absl::InvalidArgumentError(absl::StrCat("VAE tiling: the plan does not fit the input ", Shape(x.sizes())));
    }
  }
  const bool in_place = mode == VaeBlendMode::kEncodeInPlace;
  auto blend = in_place ? BlendEagerInPlace : BlendFusedInPlace;
  const int64_t nh = plan.num_h, nw = plan.num_w;
  try {
    // Neighbours a later tile still reads: encode keeps the blended tile, decode the raw one.
    std::vector<at::Tensor> prev_row(nw), cur_row(nw);
    std::vector<at::Tensor> prev_layer, cur_layer;
    if (plan.blend_t > 0) prev_layer.resize(nh * nw), cur_layer.resize(nh * nw);
    std::vector<at::Tensor> layers;
    int64_t batch = -1, channels = -1;
    size_t k = 0;
    for (int64_t f = 0; f < plan.num_t; ++f) {
      std::vector<at::Tensor> rows;
      for (int64_t i = 0; i < nh; ++i) {
        std::vector<at::Tensor> crops;
        for (int64_t j = 0; j < nw; ++j) {
          const VaeTile& t = plan.tiles[k++];
          at::Tensor in =
              x.slice(2, t.t0, t.t0 + t.t_len).slice(3, t.h0, t.h0 + t.h_len).slice(4, t.w0, t.w0 + t.w_len);
          MAGI_ASSIGN_OR_RETURN(at::Tensor out, tile_fn(in));
          if (!out.defined() || out.dim() != 5 || (batch >= 0 && (out.size(0) != batch || out.size(1) != channels))) {
            return absl::InternalError(absl::StrCat("VAE tiling: tile (", t.f, ", ", t.i, ", ", t.j,
                                                    ") returned an unexpected shape ",
                                                    out.defined() ? Shape(out.sizes()) : "undefined"));
          }
          batch = out.size(0), channels = out.size(1);
          at::Tensor b = in_place ? out : out.clone();
          if (f > 0 && plan.blend_t > 0) blend(prev_layer[i * nw + j], b, 2, plan.blend_t);
          if (i > 0) blend(prev_row[j], b, 3, plan.blend_h);
          if (j > 0) blend(cur_row[j - 1], b, 4, plan.blend_w);
          at::Tensor keep = in_place ? b : out;
          cur_row[j] = keep;
          if (plan.blend_t > 0) cur_layer[i * nw + j] = keep;
          crops.push_back(b.slice(2, 0, plan.limit_t).slice(3, 0, plan.limit_h).slice(4, 0, plan.limit_w));
        }
        rows.push_back(at::cat(crops, 4));
        std::swap(prev_row, cur_row);
      }
      layers.push_back(at::cat(rows, 3));
      std::swap(prev_layer, cur_layer);
      std::fill(prev_row.begin(), prev_row.end(), at::Tensor());
    }
    return layers.size() == 1 ? layers[0] : at::cat(layers, 2);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("VAE tiling failed: ", e.what()));
  }
}

}  // namespace magi
