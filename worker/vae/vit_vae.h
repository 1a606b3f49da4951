// The MAGI-1 transformer VAE ("ViTVAE", spec pipeline.md §5.2-5.4): a ViT encoder from
// pixels to a Gaussian posterior (of which inference uses the mean) and a ViT decoder from
// latents back to pixels, 8x spatial and 4x temporal compression.
//
// ViTVae runs ONE tile; tiling, blending and uint8 output live in vae_tiling.h and
// vae_codec.h. Two numeric modes:
//  * kFloat32: everything float32 (for checking against a float32 reference).
//  * kBFloat16: the reference pipeline's dtype flow. Weights are bf16. The encoder runs
//    every op in bf16 (the reference casts the model and the input to bf16, no autocast).
//    The decoder emulates the reference's torch.autocast("cuda", bf16): linear and conv3d
//    cast their inputs to bf16 and return bf16, layer_norm runs and returns float32, every
//    other op runs in its input dtype. Attention is computed in float32 from the bf16 q/k/v
//    and cast back (the golden's flash-attention stand-in).
// Devices: any device ATen supports; weights live on Options::device and inputs are moved
// there.
//
// Thread safety: immutable after Load(); EncodeTile/DecodeTile are const, cache nothing and
// may run concurrently. Not copyable.
#ifndef MAGI_WORKER_VAE_VIT_VAE_H_
#define MAGI_WORKER_VAE_VIT_VAE_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/vae/vae_config.h"

namespace magi {

class Checkpoint;

enum class VaeCompute { kFloat32, kBFloat16 };

class ViTVae {
 public:
  struct Options {
    c10::Device device = c10::Device(c10::kCPU);
    VaeCompute compute = VaeCompute::kBFloat16;
    // Reject checkpoint keys the model does not use.
    bool strict = true;
    // Upper bound on the float32 attention-score buffer of one attention call; heads are
    // processed in groups that fit (memory stays bounded for large tiles).
    int64_t attention_bytes_budget = int64_t{256} << 20;
  };

  // Takes every weight from `checkpoint` with the reference's state_dict key names
  // (encoder.*, decoder.*), checking shapes; F32/BF16/F16 storage is converted to the
  // compute dtype. Errors name the file and the key; with strict, unused keys are an error.
  static absl::StatusOr<std::unique_ptr<ViTVae>> Load(const VaeConfig& config, Checkpoint& checkpoint,
                                                      const Options& options);
  // Loads a released VAE folder: config.json + diffusion_pytorch_model.safetensors (or the
  // folder's single *.safetensors / index, see Checkpoint::Open).
  static absl::StatusOr<std::unique_ptr<ViTVae>> LoadFolder(const std::string& folder, const Options& options);

  ~ViTVae();
  ViTVae(const ViTVae&) = delete;
  ViTVae& operator=(const ViTVae&) = delete;

  // The reference's deterministic tile encode (VaeHelper.patch_vae_encode): `x`
  // [B, in_chans, T, H, W] in [-1, 1] (any float dtype; cast to the compute dtype) ->
  // posterior mean [B, z_chans, T/4, H/8, W/8] in the compute dtype. A single frame (T == 1)
  // is repeated to 4 frames and the first latent frame kept. T and H, W are floored to the
  // patch grid as the reference's strided conv does; T in {2, 3} or H, W below one patch
  // give no latent and are an InvalidArgument.
  absl::StatusOr<at::Tensor> EncodeTile(const at::Tensor& x) const;
  // The whole posterior of EncodeTile's tile: [B, encoder_out_channels, T', H', W'] (the
  // mean's channels, then the log-variance's), as the encoder's last layer gives it.
  // EncodeTile returns its mean half. Differentiable (training, tools/train_tiny).
  absl::StatusOr<at::Tensor> EncodeMoments(const at::Tensor& x) const;

  // The reference's tile decode (ViTVAE.decode): `z` [B, z_chans, T', H', W'] (float32 in
  // the pipeline) -> [B, 3, 4T', 8H', 8W'] in the compute dtype; a single latent frame
  // (T' == 1) decodes to 4 frames of which only the first is returned.
  absl::StatusOr<at::Tensor> DecodeTile(const at::Tensor& z) const;

  const VaeConfig& config() const;
  const Options& options() const;
  at::ScalarType compute_dtype() const;
  // Bytes of all weights held.
  int64_t weight_bytes() const;
  // Every weight held, by its state_dict key (encoder.*, decoder.*), as handles of the
  // model's own tensors: setting requires_grad or replacing their data (Tensor::set_data)
  // changes the model (training; see the thread-safety note above).
  std::map<std::string, at::Tensor> NamedWeights() const;

 private:
  struct Impl;
  explicit ViTVae(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The position table `pos` [1, 1 + L * S * S, C] of a VAE with `config` (its training grid:
// L = latent_length() frames of S x S = latent_size()^2 tokens) for a token grid T x H x W:
// `pos` itself on the training grid, otherwise rows 1.. resized trilinearly
// (align_corners=false) with the cls row kept (spec §5.3). Differentiable.
at::Tensor ResizeVaePosEmbed(const at::Tensor& pos, const VaeConfig& config, int64_t T, int64_t H, int64_t W);

}  // namespace magi

#endif  // MAGI_WORKER_VAE_VIT_VAE_H_
