#include "worker/t5/t5_encoder.h"

#include <cmath>
#include <exception>
#include <filesystem>
#include <limits>

#include <ATen/ATen.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/gemm.h"
#include "worker/model/checkpoint.h"

namespace magi {
namespace fs = std::filesystem;

at::Tensor T5RelativePositionBucket(const at::Tensor& relative_position, bool bidirectional,
                                    int64_t num_buckets, int64_t max_distance) {
  // Same op order and dtypes as HF (the log-spaced part is float32), so results match exactly.
  at::Tensor rel = relative_position.to(at::kLong);
  at::Tensor buckets = at::zeros_like(rel);
  if (bidirectional) {
    num_buckets /= 2;
    buckets = buckets + (rel > 0).to(at::kLong) * num_buckets;
    rel = rel.abs();
  } else {
    rel = -at::minimum(rel, at::zeros_like(rel));
  }
  const int64_t max_exact = num_buckets / 2;
  at::Tensor is_small = rel < max_exact;
  at::Tensor large = (at::log(rel.to(at::kFloat) / static_cast<double>(max_exact)) /
                      std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                      static_cast<double>(num_buckets - max_exact))
                         .to(at::kLong) +
                     max_exact;
  large = at::minimum(large, at::full_like(large, num_buckets - 1));
  return buckets + at::where(is_small, rel, large);
}

namespace {

const std::vector<StDtype> kFloatTypes = {StDtype::kF32, StDtype::kBF16, StDtype::kF16};

absl::StatusOr<at::Tensor> TakeF32On(Checkpoint& ckpt, const std::string& key, const std::vector<int64_t>& shape,
                                   c10::Device device) {
  MAGI_ASSIGN_OR_RETURN(at::Tensor t, ckpt.Take(key, shape, kFloatTypes));
  return t.to(device, at::kFloat);  // no copy for F32 on CPU
}

// HF T5LayerNorm: no mean subtraction, no bias, variance in fp32, weight applied last.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor var = x.pow(2).mean(-1, /*keepdim=*/true);
  return w * (x * at::rsqrt(var + eps));
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& w) { return gemm::Matmul(x, w.t()); }

}  // namespace

absl::StatusOr<std::unique_ptr<T5Encoder>> T5Encoder::Load(const T5Config& config, Checkpoint& ckpt,
                                                            c10::Device device) {
  auto TakeF32 = [&](Checkpoint& c, const std::string& key, const std::vector<int64_t>& shape) {
    return TakeF32On(c, key, shape, device);
  };
  std::unique_ptr<T5Encoder> enc(new T5Encoder(config));
  const int64_t D = config.d_model, I = config.inner_dim(), F = config.d_ff;
  // The embedding is tied: HF safetensors exports store `shared.weight` only, torch.save'd
  // state_dicts store both names. Accept either; when both exist they must agree.
  const std::string kShared = "shared.weight", kEmbed = "encoder.embed_tokens.weight";
  const bool has_shared = ckpt.Contains(kShared), has_embed = ckpt.Contains(kEmbed);
  if (!has_shared && !has_embed) {
    return absl::NotFoundError(absl::StrCat("T5 checkpoint ", ckpt.description(), ": neither '", kShared, "' nor '",
                                            kEmbed, "' (the tied token embedding) is present"));
  }
  MAGI_ASSIGN_OR_RETURN(enc->shared_, TakeF32(ckpt, has_shared ? kShared : kEmbed, {config.vocab_size, D}));
  if (has_shared && has_embed) {
    MAGI_ASSIGN_OR_RETURN(at::Tensor twin, TakeF32(ckpt, kEmbed, {config.vocab_size, D}));
    if (!at::equal(twin, enc->shared_)) {
      return absl::InvalidArgumentError(absl::StrCat("T5 checkpoint ", ckpt.description(), ": '", kShared, "' and '",
                                                     kEmbed, "' are both present but differ (they must be tied)"));
    }
  }
  MAGI_ASSIGN_OR_RETURN(enc->relative_bias_,
                        TakeF32(ckpt, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                                {config.relative_attention_num_buckets, config.num_heads}));
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string p = absl::StrCat("encoder.block.", i, ".layer.");
    Block b;
    MAGI_ASSIGN_OR_RETURN(b.ln0, TakeF32(ckpt, p + "0.layer_norm.weight", {D}));
    MAGI_ASSIGN_OR_RETURN(b.q, TakeF32(ckpt, p + "0.SelfAttention.q.weight", {I, D}));
    MAGI_ASSIGN_OR_RETURN(b.k, TakeF32(ckpt, p + "0.SelfAttention.k.weight", {I, D}));
    MAGI_ASSIGN_OR_RETURN(b.v, TakeF32(ckpt, p + "0.SelfAttention.v.weight", {I, D}));
    MAGI_ASSIGN_OR_RETURN(b.o, TakeF32(ckpt, p + "0.SelfAttention.o.weight", {D, I}));
    MAGI_ASSIGN_OR_RETURN(b.ln1, TakeF32(ckpt, p + "1.layer_norm.weight", {D}));
    MAGI_ASSIGN_OR_RETURN(b.wi0, TakeF32(ckpt, p + "1.DenseReluDense.wi_0.weight", {F, D}));
    MAGI_ASSIGN_OR_RETURN(b.wi1, TakeF32(ckpt, p + "1.DenseReluDense.wi_1.weight", {F, D}));
    MAGI_ASSIGN_OR_RETURN(b.wo, TakeF32(ckpt, p + "1.DenseReluDense.wo.weight", {D, F}));
    enc->blocks_.push_back(std::move(b));
  }
  MAGI_ASSIGN_OR_RETURN(enc->final_ln_, TakeF32(ckpt, "encoder.final_layer_norm.weight", {D}));
  MAGI_RETURN_IF_ERROR(ckpt.CheckAllUsed());
  return enc;
}

absl::StatusOr<std::unique_ptr<T5Encoder>> T5Encoder::LoadFiles(const std::string& config_path,
                                                                 const std::string& weights, c10::Device device) {
  MAGI_ASSIGN_OR_RETURN(T5Config config, LoadT5Config(config_path));
  MAGI_ASSIGN_OR_RETURN(auto ckpt, Checkpoint::Open(weights));
  return Load(config, *ckpt, device);
}

absl::StatusOr<std::unique_ptr<T5Encoder>> T5Encoder::LoadFolder(const std::string& dir, c10::Device device) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("T5 model folder '", dir, "' does not exist or is not a directory"));
  }
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(config_path, ec)) {
    return absl::NotFoundError(absl::StrCat("T5 model folder '", dir, "' has no config.json"));
  }
  bool has_safetensors = false, has_bin = false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (absl::EndsWith(name, ".safetensors") || absl::EndsWith(name, ".safetensors.index.json")) has_safetensors = true;
    if (absl::EndsWith(name, ".bin") || absl::EndsWith(name, ".bin.index.json")) has_bin = true;
  }
  if (!has_safetensors && has_bin) {
    return absl::FailedPreconditionError(absl::StrCat(
        "T5 model folder '", dir,
        "' holds only PyTorch .bin weights (pytorch_model*.bin); convert them to safetensors once as "
        "described in docs/t5.md"));
  }
  return LoadFiles(config_path, dir, device);
}

at::Tensor T5Encoder::PositionBias(int64_t length) const {
  at::Tensor pos = at::arange(length, at::TensorOptions().dtype(at::kLong).device(relative_bias_.device()));
  at::Tensor rel = pos.unsqueeze(0) - pos.unsqueeze(1);  // [q, k] = k - q
  at::Tensor buckets = T5RelativePositionBucket(rel, /*bidirectional=*/true, config_.relative_attention_num_buckets,
                                                config_.relative_attention_max_distance);
  at::Tensor values = at::embedding(relative_bias_, buckets);  // [L, L, H]
  return values.permute({2, 0, 1}).unsqueeze(0).contiguous();
}

absl::StatusOr<at::Tensor> T5Encoder::Encode(const at::Tensor& ids, const at::Tensor& mask, Trace* trace) const {
  try {
    return EncodeImpl(ids, mask, trace);
  } catch (const std::exception& e) {
    // ATen reports device and allocation errors by exception; keep them inside this module.
    return absl::InternalError(absl::StrCat("T5 encode failed: ", e.what()));
  }
}

absl::StatusOr<at::Tensor> T5Encoder::EncodeImpl(const at::Tensor& ids, const at::Tensor& mask, Trace* trace) const {
  if (!ids.defined() || ids.dim() != 2 || ids.size(1) < 1) {
    return absl::InvalidArgumentError("T5 input_ids must be a [batch, length] tensor with length >= 1");
  }
  if (!mask.defined() || mask.sizes() != ids.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat("T5 attention_mask must have the shape of input_ids [",
                                                   ids.size(0), ", ", ids.size(1), "]"));
  }
  if (at::isFloatingType(ids.scalar_type()) || ids.scalar_type() == at::kBool) {
    return absl::InvalidArgumentError("T5 input_ids must be an integer tensor");
  }
  at::Tensor id64 = ids.to(device(), at::kLong);
  if (id64.numel() > 0) {
    const int64_t lo = id64.min().item<int64_t>(), hi = id64.max().item<int64_t>();
    if (lo < 0 || hi >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("T5 input_ids must be in [0, ", config_.vocab_size - 1,
                                                     "], got values in [", lo, ", ", hi, "]"));
    }
  }
  at::Tensor maskf = mask.to(device(), at::kFloat);
  if (!at::logical_or(maskf == 0, maskf == 1).all().item<bool>()) {
    return absl::InvalidArgumentError("T5 attention_mask must hold only 0 and 1");
  }
  const int64_t B = ids.size(0), L = ids.size(1), H = config_.num_heads, dk = config_.d_kv;
  const double eps = config_.layer_norm_epsilon;

  at::Tensor h = at::embedding(shared_, id64);  // [B, L, D]
  at::Tensor bias = PositionBias(L);            // [1, H, L, L]
  if (trace) {
    trace->embed = h.clone();
    trace->position_bias = bias;
    trace->attn_residual.clear();
    trace->block_out.clear();
  }
  // HF's extended mask: (1 - mask) * finfo(float32).min on padded keys.
  at::Tensor key_mask = (1.0 - maskf).view({B, 1, 1, L}) * static_cast<double>(std::numeric_limits<float>::lowest());
  at::Tensor pos = bias + key_mask;  // [B, H, L, L]

  auto heads = [&](const at::Tensor& x) { return x.view({B, L, H, dk}).transpose(1, 2); };
  for (const Block& b : blocks_) {
    at::Tensor n = RmsNorm(h, b.ln0, eps);
    at::Tensor q = heads(Linear(n, b.q)), k = heads(Linear(n, b.k)), v = heads(Linear(n, b.v));
    at::Tensor scores = gemm::Matmul(q, k.transpose(-1, -2)) + pos;  // T5: no 1/sqrt(d_kv)
    at::Tensor attn = at::softmax(scores, -1, at::kFloat);
    at::Tensor ctx = gemm::Matmul(attn, v).transpose(1, 2).reshape({B, L, H * dk});
    h = h + Linear(ctx, b.o);
    if (trace) trace->attn_residual.push_back(h);
    n = RmsNorm(h, b.ln1, eps);
    at::Tensor gated = at::gelu(Linear(n, b.wi0), "tanh") * Linear(n, b.wi1);
    h = h + Linear(gated, b.wo);
    if (trace) trace->block_out.push_back(h);
  }
  return RmsNorm(h, final_ln_, eps);
}

int64_t T5Encoder::weight_bytes() const {
  int64_t n = shared_.nbytes() + relative_bias_.nbytes() + final_ln_.nbytes();
  for (const Block& b : blocks_) {
    for (const at::Tensor* t : {&b.ln0, &b.q, &b.k, &b.v, &b.o, &b.ln1, &b.wi0, &b.wi1, &b.wo}) n += t->nbytes();
  }
  return n;
}

}  // namespace magi
