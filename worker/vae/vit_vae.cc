#include "worker/vae/vit_vae.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "kernels/gemm.h"
#include "worker/model/checkpoint.h"

namespace magi {
namespace {

// nn.LayerNorm's default eps and ManualLayerNorm's eps in the reference (spec §5.2-5.3).
constexpr double kLayerNormEps = 1e-5;
constexpr double kQkvNormEps = 1e-5;

struct BlockWeights {
  at::Tensor norm1_w, norm1_b;  // only without ln_in_attn
  at::Tensor qkv_w, qkv_b;      // qkv_b only with qkv_bias
  at::Tensor proj_w, proj_b;
  at::Tensor norm2_w, norm2_b;
  at::Tensor fc1_w, fc1_b, fc2_w, fc2_b;
};

// The part encoder and decoder share: cls token, learned positions, blocks, final norm.
struct Tower {
  at::Tensor cls, pos;
  std::vector<BlockWeights> blocks;
  at::Tensor norm_w, norm_b;
};

std::string ShapeString(at::IntArrayRef s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

}  // namespace

struct ViTVae::Impl {
  VaeConfig config;
  Options options;
  at::ScalarType dtype = at::kFloat;
  Tower enc, dec;
  at::Tensor patch_w, patch_b;        // encoder.patch_embed.proj
  at::Tensor enc_last_w, enc_last_b;  // encoder.last_layer (Linear)
  at::Tensor proj_in_w, proj_in_b;    // decoder.proj_in
  at::Tensor dec_last_w, dec_last_b;  // decoder.last_layer (Conv3d 3x3x3)
  int64_t bytes = 0;

  // ---- loading -------------------------------------------------------------------------
  absl::StatusOr<at::Tensor> Take(Checkpoint& ckpt, const std::string& key, std::vector<int64_t> shape) {
    MAGI_ASSIGN_OR_RETURN(at::Tensor t, ckpt.Take(key, shape, {StDtype::kF32, StDtype::kBF16, StDtype::kF16}));
    at::Tensor out = t.to(options.device, dtype).contiguous();
    bytes += out.numel() * static_cast<int64_t>(out.element_size());
    return out;
  }

  absl::Status LoadTower(Checkpoint& ckpt, const std::string& p, Tower* t) {
    const int64_t C = config.embed_dim, hid = config.mlp_hidden();
    MAGI_ASSIGN_OR_RETURN(t->cls, Take(ckpt, p + ".cls_token", {1, 1, C}));
    MAGI_ASSIGN_OR_RETURN(t->pos, Take(ckpt, p + ".pos_embed", {1, config.num_patches() + 1, C}));
    t->blocks.resize(config.depth);
    for (int64_t i = 0; i < config.depth; ++i) {
      const std::string b = absl::StrCat(p, ".blocks.", i, ".");
      BlockWeights& w = t->blocks[i];
      if (!config.ln_in_attn) {
        MAGI_ASSIGN_OR_RETURN(w.norm1_w, Take(ckpt, b + "norm1.weight", {C}));
        MAGI_ASSIGN_OR_RETURN(w.norm1_b, Take(ckpt, b + "norm1.bias", {C}));
      }
      MAGI_ASSIGN_OR_RETURN(w.qkv_w, Take(ckpt, b + "attn.qkv.weight", {3 * C, C}));
      if (config.qkv_bias) {
        MAGI_ASSIGN_OR_RETURN(w.qkv_b, Take(ckpt, b + "attn.qkv.bias", {3 * C}));
      }
      MAGI_ASSIGN_OR_RETURN(w.proj_w, Take(ckpt, b + "attn.proj.weight", {C, C}));
      MAGI_ASSIGN_OR_RETURN(w.proj_b, Take(ckpt, b + "attn.proj.bias", {C}));
      MAGI_ASSIGN_OR_RETURN(w.norm2_w, Take(ckpt, b + "norm2.weight", {C}));
      MAGI_ASSIGN_OR_RETURN(w.norm2_b, Take(ckpt, b + "norm2.bias", {C}));
      MAGI_ASSIGN_OR_RETURN(w.fc1_w, Take(ckpt, b + "mlp.fc1.weight", {hid, C}));
      MAGI_ASSIGN_OR_RETURN(w.fc1_b, Take(ckpt, b + "mlp.fc1.bias", {hid}));
      MAGI_ASSIGN_OR_RETURN(w.fc2_w, Take(ckpt, b + "mlp.fc2.weight", {C, hid}));
      MAGI_ASSIGN_OR_RETURN(w.fc2_b, Take(ckpt, b + "mlp.fc2.bias", {C}));
    }
    MAGI_ASSIGN_OR_RETURN(t->norm_w, Take(ckpt, p + ".norm.weight", {C}));
    MAGI_ASSIGN_OR_RETURN(t->norm_b, Take(ckpt, p + ".norm.bias", {C}));
    return absl::OkStatus();
  }

  absl::Status LoadAll(Checkpoint& ckpt) {
    const VaeConfig& c = config;
    const int64_t C = c.embed_dim;
    MAGI_ASSIGN_OR_RETURN(patch_w, Take(ckpt, "encoder.patch_embed.proj.weight",
                                        {C, c.in_chans, c.patch_length, c.patch_size, c.patch_size}));
    MAGI_ASSIGN_OR_RETURN(patch_b, Take(ckpt, "encoder.patch_embed.proj.bias", {C}));
    MAGI_RETURN_IF_ERROR(LoadTower(ckpt, "encoder", &enc));
    MAGI_ASSIGN_OR_RETURN(enc_last_w, Take(ckpt, "encoder.last_layer.weight", {c.encoder_out_channels(), C}));
    MAGI_ASSIGN_OR_RETURN(enc_last_b, Take(ckpt, "encoder.last_layer.bias", {c.encoder_out_channels()}));
    MAGI_ASSIGN_OR_RETURN(proj_in_w, Take(ckpt, "decoder.proj_in.weight", {C, c.z_chans}));
    MAGI_ASSIGN_OR_RETURN(proj_in_b, Take(ckpt, "decoder.proj_in.bias", {C}));
    MAGI_RETURN_IF_ERROR(LoadTower(ckpt, "decoder", &dec));
    MAGI_ASSIGN_OR_RETURN(dec_last_w,
                          Take(ckpt, "decoder.last_layer.weight", {c.in_chans, c.unpatch_channels(), 3, 3, 3}));
    MAGI_ASSIGN_OR_RETURN(dec_last_b, Take(ckpt, "decoder.last_layer.bias", {c.in_chans}));
    if (options.strict) MAGI_RETURN_IF_ERROR(ckpt.CheckAllUsed());
    return absl::OkStatus();
  }

  // ---- building blocks ------------------------------------------------------------------
  // F.linear; under the emulated autocast it runs in bf16 whatever the input dtype.
  static at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, bool autocast) {
    return gemm::Linear(autocast ? x.to(at::kBFloat16) : x, w, b);
  }
  // nn.LayerNorm; under the emulated autocast it runs and returns float32.
  static at::Tensor Norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, bool autocast) {
    const int64_t C = x.size(-1);
    if (autocast) return at::layer_norm(x.to(at::kFloat), {C}, w.to(at::kFloat), b.to(at::kFloat), kLayerNormEps);
    return at::layer_norm(x, {C}, w, b, kLayerNormEps);
  }
  // The reference's ManualLayerNorm over the last dim: (x - mean) / (biased std + eps), no
  // affine, eps added to the std (spec §5.3). Runs in x's dtype, op by op as the reference.
  static at::Tensor QkvNorm(const at::Tensor& x) {
    at::Tensor mean = x.mean({-1}, /*keepdim=*/true);
    at::Tensor std = x.std({-1}, /*unbiased=*/false, /*keepdim=*/true);
    return (x - mean) / (std + kQkvNormEps);
  }

  // Non-causal softmax attention over qkv [B, N, 3, H, d] -> [B, N, H*d] in qkv's dtype.
  // Scores, softmax and the weighted sum run in float32 (the golden's flash-attention
  // stand-in); heads and query rows are processed in blocks whose score buffers fit the
  // budget, so a large tile never materialises all H*N*N scores at once.
  at::Tensor Attention(const at::Tensor& qkv) const {
    const int64_t B = qkv.size(0), N = qkv.size(1), H = qkv.size(3), d = qkv.size(4);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    at::Tensor out = at::empty({B, N, H, d}, qkv.options());
    // Two float32 N x rows buffers (scores and probabilities) per head.
    const int64_t per_row = 2 * N * static_cast<int64_t>(sizeof(float));
    const int64_t budget = std::max<int64_t>(options.attention_bytes_budget, per_row);
    const int64_t rows = std::min<int64_t>(N, budget / per_row);
    const int64_t heads = rows < N ? 1 : std::clamp<int64_t>(budget / (per_row * N), 1, H);
    for (int64_t b = 0; b < B; ++b) {
      at::Tensor qkv_b = qkv.select(0, b);  // [N, 3, H, d]
      for (int64_t h0 = 0; h0 < H; h0 += heads) {
        const int64_t h1 = std::min(H, h0 + heads);
        at::Tensor k = qkv_b.select(1, 1).slice(1, h0, h1).to(at::kFloat).transpose(0, 1);  // [h, N, d]
        at::Tensor v = qkv_b.select(1, 2).slice(1, h0, h1).to(at::kFloat).transpose(0, 1);
        at::Tensor kt = k.transpose(1, 2).contiguous();
        for (int64_t r0 = 0; r0 < N; r0 += rows) {
          const int64_t r1 = std::min(N, r0 + rows);
          at::Tensor q = qkv_b.select(1, 0).slice(0, r0, r1).slice(1, h0, h1).to(at::kFloat).transpose(0, 1);
          at::Tensor scores = gemm::Matmul(q, kt).mul_(scale);
          at::Tensor probs = at::softmax(scores, -1);
          scores.reset();
          at::Tensor o = gemm::Matmul(probs, v);  // [h, rows, d]
          out.select(0, b).slice(0, r0, r1).slice(1, h0, h1).copy_(o.transpose(0, 1));
        }
      }
    }
    return out.reshape({B, N, H * d});
  }

  at::Tensor Attn(const at::Tensor& x, const BlockWeights& w, bool autocast) const {
    const int64_t B = x.size(0), N = x.size(1), C = x.size(2), H = config.num_heads;
    at::Tensor qkv = Linear(x, w.qkv_w, w.qkv_b, autocast).reshape({B, N, 3, H, C / H});
    if (config.ln_in_attn) qkv = QkvNorm(qkv);
    // The reference hands flash-attention qkv.bfloat16(); in the float32 mode that cast is
    // what the golden's float32 variant removes.
    if (dtype == at::kBFloat16) qkv = qkv.to(at::kBFloat16);
    return Linear(Attention(qkv), w.proj_w, w.proj_b, autocast);
  }

  at::Tensor Blocks(const Tower& t, at::Tensor x, bool autocast) const {
    for (const BlockWeights& w : t.blocks) {
      at::Tensor h = config.ln_in_attn ? x : Norm(x, w.norm1_w, w.norm1_b, autocast);
      x = x + Attn(h, w, autocast);
      at::Tensor m = Linear(Norm(x, w.norm2_w, w.norm2_b, autocast), w.fc1_w, w.fc1_b, autocast);
      m = Linear(gemm::Gelu(m), w.fc2_w, w.fc2_b, autocast);
      x = x + m;
    }
    return x;
  }

  at::Tensor PosEmbed(const Tower& t, int64_t T, int64_t H, int64_t W) const {
    return ResizeVaePosEmbed(t.pos, config, T, H, W);
  }
};

at::Tensor ResizeVaePosEmbed(const at::Tensor& pos, const VaeConfig& config, int64_t T, int64_t H, int64_t W) {
  const int64_t L = config.latent_length(), S = config.latent_size(), C = config.embed_dim;
  if (T == L && H == S && W == S) return pos;
  at::Tensor grid = pos.slice(1, 1).reshape({1, L, S, S, C}).permute({0, 4, 1, 2, 3});
  at::Tensor r =
      at::upsample_trilinear3d(grid, {T, H, W}, /*align_corners=*/false, c10::nullopt, c10::nullopt, c10::nullopt);
  r = r.permute({0, 2, 3, 4, 1}).reshape({1, T * H * W, C});
  return at::cat({pos.slice(1, 0, 1), r}, 1);
}

ViTVae::ViTVae(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ViTVae::~ViTVae() = default;

absl::StatusOr<std::unique_ptr<ViTVae>> ViTVae::Load(const VaeConfig& config, Checkpoint& checkpoint,
                                                     const Options& options) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->options = options;
  impl->dtype = options.compute == VaeCompute::kBFloat16 ? at::kBFloat16 : at::kFloat;
  if (options.attention_bytes_budget < 1) {
    return absl::InvalidArgumentError("ViTVae::Options.attention_bytes_budget must be >= 1");
  }
  MAGI_RETURN_IF_ERROR(ValidateVaeConfig(config, "ViTVae::Load"));
  MAGI_RETURN_IF_ERROR(impl->LoadAll(checkpoint));
  return std::unique_ptr<ViTVae>(new ViTVae(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<ViTVae>> ViTVae::LoadFolder(const std::string& folder, const Options& options) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(folder)) return absl::NotFoundError(absl::StrCat("VAE folder '", folder, "' does not exist"));
  MAGI_ASSIGN_OR_RETURN(VaeConfig config, LoadVaeConfigFile((fs::path(folder) / "config.json").string()));
  // The released layout (diffusers): diffusion_pytorch_model.safetensors next to config.json.
  const fs::path weights = fs::path(folder) / "diffusion_pytorch_model.safetensors";
  MAGI_ASSIGN_OR_RETURN(auto ckpt, Checkpoint::Open(fs::exists(weights) ? weights.string() : folder));
  return Load(config, *ckpt, options);
}

absl::StatusOr<at::Tensor> ViTVae::EncodeTile(const at::Tensor& x_in) const {
  MAGI_ASSIGN_OR_RETURN(at::Tensor moments, EncodeMoments(x_in));
  const int64_t out_ch = impl_->config.encoder_out_channels();
  // DiagonalGaussianDistribution.mode(): the first half of the channels (the mean).
  return moments.slice(1, 0, out_ch / 2).contiguous();
}

absl::StatusOr<at::Tensor> ViTVae::EncodeMoments(const at::Tensor& x_in) const {
  const Impl& m = *impl_;
  const VaeConfig& c = m.config;
  if (!x_in.defined() || x_in.dim() != 5) {
    return absl::InvalidArgumentError(absl::StrCat("VAE encode: input must be [B, ", c.in_chans, ", T, H, W], got ",
                                                   x_in.defined() ? ShapeString(x_in.sizes()) : "an undefined tensor"));
  }
  if (!at::isFloatingType(x_in.scalar_type())) {
    return absl::InvalidArgumentError("VAE encode: input must be a floating tensor in [-1, 1]");
  }
  const int64_t B = x_in.size(0), T = x_in.size(2), H = x_in.size(3), W = x_in.size(4);
  if (B < 1 || x_in.size(1) != c.in_chans) {
    return absl::InvalidArgumentError(
        absl::StrCat("VAE encode: input must be [B >= 1, ", c.in_chans, ", T, H, W], got ", ShapeString(x_in.sizes())));
  }
  // The reference repeats a single frame to 4 frames (hard-coded) and keeps latent frame 0.
  const bool single = T == 1;
  const int64_t frames = single ? 4 : T;
  if (frames < c.patch_length || H < c.patch_size || W < c.patch_size) {
    return absl::InvalidArgumentError(absl::StrCat("VAE encode: a tile of ", T, " frames x ", H, " x ", W,
                                                   " gives no latent; need T == 1 or T >= ", c.patch_length,
                                                   ", and H, W >= ", c.patch_size));
  }
  const int64_t pl = c.patch_length, ps = c.patch_size;
  try {
    at::Tensor x = x_in.to(m.options.device, m.dtype);
    if (single) x = x.expand({-1, -1, 4, -1, -1});
    x = gemm::Conv3d(x, m.patch_w, m.patch_b, {pl, ps, ps});
    const int64_t lt = x.size(2), lh = x.size(3), lw = x.size(4);
    x = x.flatten(2).transpose(1, 2);
    x = at::cat({m.enc.cls.expand({B, -1, -1}), x}, 1);
    x = x + m.PosEmbed(m.enc, lt, lh, lw);
    x = m.Blocks(m.enc, x, /*autocast=*/false);
    x = Impl::Norm(x, m.enc.norm_w, m.enc.norm_b, false);
    x = Impl::Linear(x, m.enc_last_w, m.enc_last_b, false);
    x = x.slice(1, 1);
    const int64_t out_ch = c.encoder_out_channels();
    x = x.reshape({B, lt, lh, lw, out_ch}).permute({0, 4, 1, 2, 3});
    if (c.norm_code) {
      at::Tensor xf = x.to(at::kFloat);
      x = (xf / at::norm(xf, 2, {1}, /*keepdim=*/true)).to(x.scalar_type());
    }
    if (single) x = x.slice(2, 0, 1);
    return x.contiguous();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("VAE encode failed: ", e.what()));
  }
}

absl::StatusOr<at::Tensor> ViTVae::DecodeTile(const at::Tensor& z_in) const {
  const Impl& m = *impl_;
  const VaeConfig& c = m.config;
  if (!z_in.defined() || z_in.dim() != 5 || z_in.size(0) < 1 || z_in.size(1) != c.z_chans || z_in.size(2) < 1 ||
      z_in.size(3) < 1 || z_in.size(4) < 1) {
    return absl::InvalidArgumentError(absl::StrCat("VAE decode: latent must be [B >= 1, ", c.z_chans,
                                                   ", T >= 1, H >= 1, W >= 1], got ",
                                                   z_in.defined() ? ShapeString(z_in.sizes()) : "an undefined tensor"));
  }
  if (!at::isFloatingType(z_in.scalar_type())) {
    return absl::InvalidArgumentError("VAE decode: latent must be a floating tensor");
  }
  const bool autocast = m.dtype == at::kBFloat16;
  try {
    at::Tensor z = z_in.to(m.options.device);
    if (!autocast) z = z.to(at::kFloat);
    const int64_t B = z.size(0), Cz = z.size(1), lt = z.size(2), lh = z.size(3), lw = z.size(4);
    at::Tensor x = z.permute({0, 2, 3, 4, 1}).reshape({B, -1, Cz});
    x = Impl::Linear(x, m.proj_in_w, m.proj_in_b, autocast);
    x = at::cat({m.dec.cls.expand({B, -1, -1}), x}, 1);
    x = x + m.PosEmbed(m.dec, lt, lh, lw);
    x = m.Blocks(m.dec, x, autocast);
    x = Impl::Norm(x, m.dec.norm_w, m.dec.norm_b, autocast);
    x = x.slice(1, 1);
    const int64_t pl = c.patch_length, ps = c.patch_size, uc = c.unpatch_channels();
    // Each token vector is read as [pT, pH, pW, C] (C fastest) and scattered to its pixels.
    x = x.reshape({B, lt, lh, lw, pl, ps, ps, uc})
            .permute({0, 7, 1, 4, 2, 5, 3, 6})
            .reshape({B, uc, lt * pl, lh * ps, lw * ps});
    x = gemm::Conv3d(autocast ? x.to(at::kBFloat16) : x, m.dec_last_w, m.dec_last_b, {1, 1, 1}, {1, 1, 1});
    if (lt == 1) x = x.slice(2, 0, 1);
    return x.contiguous();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("VAE decode failed: ", e.what()));
  }
}

const VaeConfig& ViTVae::config() const { return impl_->config; }
const ViTVae::Options& ViTVae::options() const { return impl_->options; }
at::ScalarType ViTVae::compute_dtype() const { return impl_->dtype; }
int64_t ViTVae::weight_bytes() const { return impl_->bytes; }

std::map<std::string, at::Tensor> ViTVae::NamedWeights() const {
  const Impl& m = *impl_;
  std::map<std::string, at::Tensor> w;
  auto put = [&](const std::string& key, const at::Tensor& t) {
    if (t.defined()) w[key] = t;
  };
  for (const auto& [p, t] : {std::pair<std::string, const Tower*>{"encoder", &m.enc}, {"decoder", &m.dec}}) {
    put(p + ".cls_token", t->cls);
    put(p + ".pos_embed", t->pos);
    for (size_t i = 0; i < t->blocks.size(); ++i) {
      const std::string b = absl::StrCat(p, ".blocks.", i, ".");
      const BlockWeights& bw = t->blocks[i];
      put(b + "norm1.weight", bw.norm1_w);
      put(b + "norm1.bias", bw.norm1_b);
      put(b + "attn.qkv.weight", bw.qkv_w);
      put(b + "attn.qkv.bias", bw.qkv_b);
      put(b + "attn.proj.weight", bw.proj_w);
      put(b + "attn.proj.bias", bw.proj_b);
      put(b + "norm2.weight", bw.norm2_w);
      put(b + "norm2.bias", bw.norm2_b);
      put(b + "mlp.fc1.weight", bw.fc1_w);
      put(b + "mlp.fc1.bias", bw.fc1_b);
      put(b + "mlp.fc2.weight", bw.fc2_w);
      put(b + "mlp.fc2.bias", bw.fc2_b);
    }
    put(p + ".norm.weight", t->norm_w);
    put(p + ".norm.bias", t->norm_b);
  }
  put("encoder.patch_embed.proj.weight", m.patch_w);
  put("encoder.patch_embed.proj.bias", m.patch_b);
  put("encoder.last_layer.weight", m.enc_last_w);
  put("encoder.last_layer.bias", m.enc_last_b);
  put("decoder.proj_in.weight", m.proj_in_w);
  put("decoder.proj_in.bias", m.proj_in_b);
  put("decoder.last_layer.weight", m.dec_last_w);
  put("decoder.last_layer.bias", m.dec_last_b);
  return w;
}

}  // namespace magi
