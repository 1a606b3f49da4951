// Training the MAGI-1 ViT VAE on the synthetic physics world (issue #17, step 1 of
// `magi-train-tiny`): LibTorch autograd on the CPU through the inference model itself
// (ViTVae's weights made trainable in place), so what is trained is exactly what the real
// loader reads back.
//
// Objective: the KL-regularised autoencoder of the reference's VAE -- a sample of the
// encoder's diagonal Gaussian posterior (mean + exp(logvar / 2) * eps) decoded back, mean
// squared error against the clip in [-1, 1], plus kl_weight x the posterior's KL to N(0, I)
// (mean over latent elements). The reference's VAE was also trained with perceptual and GAN
// terms; on flat-coloured synthetic scenes the reconstruction and KL terms are what matter.
// Optimiser: Adam (b1 0.9, b2 0.999, eps 1e-8) with the global gradient norm clipped to 1.
//
// Data: random clips of `frames` frames at `size` x `size` from world scenes (physics/
// world.h) drawn from `seed`; held-out scenes come from a disjoint seed range, and their
// reconstruction error (the posterior mean decoded, as inference does) is measured before
// and after training.
#ifndef MAGI_TOOLS_TRAIN_TINY_TRAIN_VAE_H_
#define MAGI_TOOLS_TRAIN_TINY_TRAIN_VAE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "physics/world.h"
#include "worker/vae/vit_vae.h"

namespace magi {

struct VaeTrainOptions {
  int steps = 400;
  int batch = 8;                 // clips per step
  int frames = 12;               // clip length: a multiple of the VAE's patch_length
  int size = 64;                 // a multiple of 16 in [16, 256] (the world's sizes)
  double learning_rate = 1e-3;   // Adam, constant after a linear warm-up of 20 steps
  double kl_weight = 1e-6;
  uint64_t seed = 1;             // training scenes, clip offsets and posterior noise
  int heldout_scenes = 8;        // scenes for the before/after reconstruction error
  // Train the decoder alone: the encoder's weights, and so the latents a DiT was trained on,
  // stay as they are.
  bool decoder_only = false;
  // Gaussian noise added to each clip's sampled latent before decoding, its standard deviation
  // drawn per clip from [0, latent_noise): a decoder that returns the same frames for
  // latents a generator got slightly wrong (docs/training.md, "Where the still frames are lost").
  double latent_noise = 0;
  // With latent_noise: the level is relative to the clip's latent, a multiple of the root mean
  // square of its posterior mean (held constant in the gradient), instead of absolute. An
  // encoder can outgrow absolute noise by scaling its latents up; relative noise it cannot, so
  // whatever the decoder needs (an object's colour as much as its place) must be coded above it.
  bool latent_noise_relative = false;
  // Weight of the colour anchor (0: none): the first 3 latent channels' posterior mean is pulled
  // toward each latent patch's mean RGB less its frame's mean (the objects' colour, where they
  // are), scaled so that it has the clip latent's RMS over the step's clips; the squared error
  // is taken relative to that RMS, so the term is scale-free. Colour then has latent channels
  // of its own, as large as the others, instead of small offsets the decoder amplifies back
  // (LatentColourShare; docs/training.md).
  double colour_anchor = 0;
  // Decode the posterior mean in training instead of a sample of the posterior (the mean is
  // what the pipeline encodes and the DiT learns), so that no sample noise hides small
  // offsets from the decoder. Measured: it did not change the object colour error of the
  // width-256 VAE (its decoder's one channel per pixel was the cause; docs/training.md).
  bool posterior_mean = false;
  // Clips of a step computed at once, each on its own thread with one ATen thread. Any count
  // gives bit-equal weights (batch_gradient.h).
  int workers = 1;
  // Called after every step: step (1-based), the step's loss and its reconstruction MSE.
  std::function<void(int step, double loss, double mse)> on_step;
};

struct VaeTrainResult {
  // Mean squared error of held-out clips reconstructed from the posterior mean, in [0, 1]
  // pixel units, before and after training.
  double heldout_mse_before = 0;
  double heldout_mse_after = 0;
  // LatentColourShare of the held-out scenes, before and after training.
  double colour_share_before = 0;
  double colour_share_after = 0;
  // ObjectColourError of the held-out scenes, before and after training.
  double colour_error_before = 0;
  double colour_error_after = 0;
  double seconds = 0;
};

// `n` clips [n, 3, frames, size, size] float32 in [-1, 1]: clip i is scene first_seed + i,
// from frame `start_frame` (or, with offsets_seed != 0, a frame in [0, 24) drawn from it).
absl::StatusOr<at::Tensor> WorldClips(uint64_t first_seed, int n, int frames, int size, int start_frame = 0,
                                      uint64_t offsets_seed = 0);

// Trains `vae` (loaded with VaeCompute::kFloat32) in place. Errors: InvalidArgument naming the
// option and its allowed range; a non-finite loss is an Internal error naming the step.
absl::StatusOr<VaeTrainResult> TrainVae(ViTVae& vae, const VaeTrainOptions& options);

// Reconstruction MSE (posterior mean decoded) of `clips` in [0, 1] pixel units.
absl::StatusOr<double> ReconstructionMse(const ViTVae& vae, const at::Tensor& clips);

// How much of the objects' latent signal is their colour: over the first `scenes` held-out
// scenes (`frames` frames from frame 0 at `size`), the squared latent distance (posterior
// means) between each scene and the same scene recoloured (every object the next colour of
// the palette), over that between the scene and its empty background. In pixels the ratio is
// about 0.77 for the world's palette; a latent that keeps it small leaves a DiT trained on
// latent MSE little reason to learn colours (docs/training.md).
absl::StatusOr<double> LatentColourShare(const ViTVae& vae, int scenes, int frames, int size);

// How far the objects in `frames` ([scenes.size(), 3, T, size, size] in [-1, 1], frame f of
// scene i showing what the world renders for it from frame 0) are from their colours: the mean,
// over every object in every frame where the world's labels show at least 8 of its pixels, of
// the Euclidean distance between its mean RGB over those pixels and its palette RGB, in 0-255
// units. 0: every object its colour. InvalidArgument for other shapes or when no object shows.
absl::StatusOr<double> ObjectColourDistance(const std::vector<physics::Scene>& scenes, const at::Tensor& frames);

// ObjectColourDistance of the first `scenes` held-out scenes (`frames` frames from frame 0 at
// `size`) encoded (posterior mean) and decoded by `vae`: how well the VAE keeps colour. A
// decoder of width 256 (one channel per pixel before its last convolution) paints every object
// about the same brown: 120-136 after 600-3000 steps (docs/training.md).
absl::StatusOr<double> ObjectColourError(const ViTVae& vae, int scenes, int frames, int size);

}  // namespace magi

#endif  // MAGI_TOOLS_TRAIN_TINY_TRAIN_VAE_H_
