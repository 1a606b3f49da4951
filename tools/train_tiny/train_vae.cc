#include "tools/train_tiny/train_vae.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "physics/world.h"
#include "tools/train_tiny/adam.h"
#include "tools/train_tiny/batch_gradient.h"
#include "tools/train_tiny/train_options.h"

namespace magi {
namespace {

using physics::CheckRenderArgs;
using physics::MakeScene;
using physics::RenderSceneRgb;
using physics::Scene;
using physics::SplitMix64;

// Held-out scenes: far from any training seed (those are seed * 2^32 + counter).
constexpr uint64_t kHeldoutBase = uint64_t{0xFEED} << 48;

absl::Status CheckOptions(const ViTVae& vae, const VaeTrainOptions& o) {
  const VaeConfig& c = vae.config();
  if (vae.compute_dtype() != at::kFloat) {
    return absl::InvalidArgumentError("VAE training: load the VAE with VaeCompute::kFloat32");
  }
  if (!c.double_z) {
    return absl::InvalidArgumentError("VAE training: the VAE's ddconfig.double_z must be true (a mean and a "
                                      "log-variance per latent channel)");
  }
  auto range = [](const char* name, double v, double lo, double hi) {
    return CheckTrainOption("VAE training", name, v, lo, hi);
  };
  MAGI_RETURN_IF_ERROR(range("steps", o.steps, 0, 1000000));
  MAGI_RETURN_IF_ERROR(range("batch", o.batch, 1, 256));
  MAGI_RETURN_IF_ERROR(range("learning_rate", o.learning_rate, 1e-8, 1.0));
  MAGI_RETURN_IF_ERROR(range("kl_weight", o.kl_weight, 0.0, 1.0));
  MAGI_RETURN_IF_ERROR(range("latent_noise", o.latent_noise, 0.0, 10.0));
  MAGI_RETURN_IF_ERROR(range("colour_anchor", o.colour_anchor, 0.0, 100.0));
  if (o.colour_anchor > 0 && c.z_chans < 3) {
    return absl::InvalidArgumentError(absl::StrCat("VAE training: colour_anchor needs 3 latent channels, the VAE has ",
                                                   c.z_chans));
  }
  if (o.latent_noise_relative && o.latent_noise <= 0) {
    return absl::InvalidArgumentError("VAE training: latent_noise_relative scales latent_noise, which is 0: give "
                                      "latent_noise in (0, 10]");
  }
  MAGI_RETURN_IF_ERROR(range("heldout_scenes", o.heldout_scenes, 1, 1024));
  MAGI_RETURN_IF_ERROR(range("workers", o.workers, 1, 256));
  if (o.frames < c.patch_length || o.frames % c.patch_length != 0 || o.frames > 96) {
    return absl::InvalidArgumentError(absl::StrCat("VAE training: frames must be a multiple of the VAE's patch_length ",
                                                   c.patch_length, " in [", c.patch_length, ", 96], got ", o.frames));
  }
  MAGI_RETURN_IF_ERROR(CheckRenderArgs(o.size, o.frames, "size", "frames"));
  return absl::OkStatus();
}

uint64_t Mix(uint64_t a, uint64_t b) {
  SplitMix64 r(a * 0x9E3779B97F4A7C15ULL ^ b);
  return r.Next();
}

}  // namespace

namespace {

// `scene`'s frames [start, start + frames) into `out` [3, frames, size, size] in [-1, 1].
absl::Status RenderInto(const Scene& scene, int start, int frames, int size, at::Tensor out) {
  MAGI_ASSIGN_OR_RETURN(std::vector<RgbFrame> rgb, RenderSceneRgb(scene, size, start + frames));
  for (int f = 0; f < frames; ++f) {
    const RgbFrame& fr = rgb[static_cast<size_t>(start + f)];
    at::Tensor hwc = at::from_blob(const_cast<uint8_t*>(fr.rgb24.data()), {size, size, 3}, at::kByte);
    out.select(1, f).copy_(hwc.permute({2, 0, 1}).to(at::kFloat).div(127.5).sub(1.0));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<at::Tensor> WorldClips(uint64_t first_seed, int n, int frames, int size, int start_frame,
                                      uint64_t offsets_seed) {
  if (n < 1) return absl::InvalidArgumentError(absl::StrCat("clips: n must be >= 1, got ", n));
  if (start_frame < 0) return absl::InvalidArgumentError(absl::StrCat("clips: start_frame must be >= 0, got ", start_frame));
  at::Tensor out = at::empty({n, 3, frames, size, size}, at::kFloat);
  for (int i = 0; i < n; ++i) {
    const Scene scene = MakeScene(first_seed + static_cast<uint64_t>(i));
    const int start = offsets_seed != 0 ? static_cast<int>(Mix(offsets_seed, first_seed + i) % 24) : start_frame;
    MAGI_RETURN_IF_ERROR(RenderInto(scene, start, frames, size, out.select(0, i)));
  }
  return out;
}

absl::StatusOr<double> LatentColourShare(const ViTVae& vae, int scenes, int frames, int size) {
  if (scenes < 1) return absl::InvalidArgumentError(absl::StrCat("colour share: scenes must be >= 1, got ", scenes));
  at::NoGradGuard no_grad;
  const int colours = static_cast<int>(physics::Palette().size());
  at::Tensor own = at::empty({scenes, 3, frames, size, size}, at::kFloat);
  at::Tensor recoloured = at::empty_like(own), empty = at::empty_like(own);
  for (int i = 0; i < scenes; ++i) {
    const Scene scene = MakeScene(kHeldoutBase + static_cast<uint64_t>(i));
    Scene other = scene, none = scene;
    for (physics::ObjectState& obj : other.objects) obj.colour = (obj.colour + 1) % colours;
    none.objects.clear();
    MAGI_RETURN_IF_ERROR(RenderInto(scene, 0, frames, size, own.select(0, i)));
    MAGI_RETURN_IF_ERROR(RenderInto(other, 0, frames, size, recoloured.select(0, i)));
    MAGI_RETURN_IF_ERROR(RenderInto(none, 0, frames, size, empty.select(0, i)));
  }
  MAGI_ASSIGN_OR_RETURN(at::Tensor z, vae.EncodeTile(own));
  MAGI_ASSIGN_OR_RETURN(at::Tensor zr, vae.EncodeTile(recoloured));
  MAGI_ASSIGN_OR_RETURN(at::Tensor ze, vae.EncodeTile(empty));
  return (z - zr).pow(2).sum().item<double>() / (z - ze).pow(2).sum().item<double>();
}

absl::StatusOr<double> ObjectColourDistance(const std::vector<Scene>& scenes, const at::Tensor& frames) {
  const int n = static_cast<int>(scenes.size());
  if (n < 1 || !frames.defined() || frames.dim() != 5 || frames.size(0) != n || frames.size(1) != 3 ||
      frames.size(3) != frames.size(4)) {
    return absl::InvalidArgumentError(absl::StrCat("colour distance: frames must be [", n,
                                                   " scenes (>= 1), 3, T, size, size]"));
  }
  const int t = static_cast<int>(frames.size(2)), size = static_cast<int>(frames.size(3));
  // [scenes, T, size, size, 3] in 0-255 units.
  const at::Tensor rgb = ((frames.to(at::kFloat).clamp(-1, 1) + 1.0) * 127.5).permute({0, 2, 3, 4, 1}).contiguous();
  const float* px = rgb.data_ptr<float>();
  double sum = 0;
  int64_t count_objects = 0;
  for (int i = 0; i < n; ++i) {
    const Scene& scene = scenes[static_cast<size_t>(i)];
    MAGI_ASSIGN_OR_RETURN(std::vector<physics::RenderedFrame> rendered, physics::RenderScene(scene, size, t));
    for (int f = 0; f < t; ++f) {
      const std::vector<uint8_t>& label = rendered[static_cast<size_t>(f)].label;
      const float* frame = px + (static_cast<int64_t>(i) * t + f) * size * size * 3;
      for (size_t k = 0; k < scene.objects.size(); ++k) {
        double acc[3] = {0, 0, 0};
        int count = 0;
        for (int p = 0; p < size * size; ++p) {
          if (label[static_cast<size_t>(p)] != k + 1) continue;
          for (int ch = 0; ch < 3; ++ch) acc[ch] += frame[3 * p + ch];
          ++count;
        }
        if (count < 8) continue;
        const physics::Colour& want = physics::Palette()[static_cast<size_t>(scene.objects[k].colour)];
        const double dr = acc[0] / count - want.r, dg = acc[1] / count - want.g, db = acc[2] / count - want.b;
        sum += std::sqrt(dr * dr + dg * dg + db * db);
        ++count_objects;
      }
    }
  }
  if (count_objects == 0) return absl::InvalidArgumentError("colour distance: no object shows 8 pixels in any frame");
  return sum / static_cast<double>(count_objects);
}

absl::StatusOr<double> ObjectColourError(const ViTVae& vae, int scenes, int frames, int size) {
  if (scenes < 1) return absl::InvalidArgumentError(absl::StrCat("colour error: scenes must be >= 1, got ", scenes));
  at::NoGradGuard no_grad;
  std::vector<Scene> all;
  for (int i = 0; i < scenes; ++i) all.push_back(MakeScene(kHeldoutBase + static_cast<uint64_t>(i)));
  at::Tensor clips = at::empty({scenes, 3, frames, size, size}, at::kFloat);
  for (int i = 0; i < scenes; ++i) {
    MAGI_RETURN_IF_ERROR(RenderInto(all[static_cast<size_t>(i)], 0, frames, size, clips.select(0, i)));
  }
  MAGI_ASSIGN_OR_RETURN(at::Tensor z, vae.EncodeTile(clips));
  MAGI_ASSIGN_OR_RETURN(at::Tensor rec, vae.DecodeTile(z));
  return ObjectColourDistance(all, rec);
}

absl::StatusOr<double> ReconstructionMse(const ViTVae& vae, const at::Tensor& clips) {
  at::NoGradGuard no_grad;
  MAGI_ASSIGN_OR_RETURN(at::Tensor z, vae.EncodeTile(clips));
  MAGI_ASSIGN_OR_RETURN(at::Tensor rec, vae.DecodeTile(z));
  // [-1, 1] -> [0, 1]: the squared error scales by 1/4.
  return (rec.clamp(-1, 1) - clips).pow(2).mean().item<double>() / 4.0;
}

absl::StatusOr<VaeTrainResult> TrainVae(ViTVae& vae, const VaeTrainOptions& o) {
  MAGI_RETURN_IF_ERROR(CheckOptions(vae, o));
  const auto t0 = std::chrono::steady_clock::now();
  VaeTrainResult result;
  MAGI_ASSIGN_OR_RETURN(at::Tensor heldout, WorldClips(kHeldoutBase, o.heldout_scenes, o.frames, o.size, 12));
  MAGI_ASSIGN_OR_RETURN(result.heldout_mse_before, ReconstructionMse(vae, heldout));
  MAGI_ASSIGN_OR_RETURN(result.colour_share_before, LatentColourShare(vae, o.heldout_scenes, o.frames, o.size));
  MAGI_ASSIGN_OR_RETURN(result.colour_error_before, ObjectColourError(vae, o.heldout_scenes, o.frames, o.size));

  // The model's own tensors become trainable copies; the Adam moments live beside them.
  // With decoder_only the encoder's weights are left out: they stay as they are and build no graph.
  std::map<std::string, at::Tensor> params = vae.NamedWeights();
  if (o.decoder_only) {
    for (auto it = params.begin(); it != params.end();) {
      it = it->first.rfind("decoder.", 0) == 0 ? std::next(it) : params.erase(it);
    }
    if (params.empty()) return absl::InvalidArgumentError("VAE training: decoder_only, but the VAE has no decoder.* weights");
  }
  Adam adam(params);
  std::vector<at::Tensor> trainable;
  for (auto& [name, t] : params) trainable.push_back(t);
  const VaeConfig& c = vae.config();
  const int64_t z_chans = c.z_chans;
  const std::vector<int64_t> latent_sizes = {o.batch, z_chans, o.frames / c.patch_length, o.size / c.patch_size,
                                             o.size / c.patch_size};
  const BatchGradient batches(o.workers);
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  std::vector<double> clip_mse(static_cast<size_t>(o.batch));
  try {
    for (int step = 1; step <= o.steps; ++step) {
      MAGI_ASSIGN_OR_RETURN(at::Tensor x, WorldClips((o.seed << 32) + static_cast<uint64_t>(step - 1) * o.batch,
                                                     o.batch, o.frames, o.size, 0, Mix(o.seed, step)));
      // The step's draws, for the whole batch at once on this thread: the posterior samples'
      // eps, then (with latent_noise) each clip's level in [0, latent_noise) -- clean latents
      // stay in the mix -- and the noise it scales.
      const at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat);
      const at::Tensor eps = at::randn(latent_sizes, gen, f32);
      at::Tensor extra;
      if (o.latent_noise > 0) {
        const at::Tensor level = at::rand({o.batch, 1, 1, 1, 1}, gen, f32) * o.latent_noise;
        extra = level * at::randn(latent_sizes, gen, f32);
      }
      // The colour anchor's target: each latent patch's mean RGB less its frame's mean, over
      // the step's clips scaled to unit RMS (each clip's latent RMS multiplies it below).
      at::Tensor anchor;
      if (o.colour_anchor > 0) {
        at::Tensor pooled = at::avg_pool3d(x, {c.patch_length, c.patch_size, c.patch_size});
        pooled = pooled - pooled.mean({3, 4}, /*keepdim=*/true);
        anchor = pooled / (pooled.pow(2).mean().sqrt() + 1e-6);
      }
      MAGI_ASSIGN_OR_RETURN(
          const double loss_value, batches.MeanGradient(trainable, o.batch, "VAE training", [&](int i) -> absl::StatusOr<at::Tensor> {
            const at::Tensor xi = x.narrow(0, i, 1);
            MAGI_ASSIGN_OR_RETURN(at::Tensor moments, vae.EncodeMoments(xi));
            at::Tensor mean = moments.slice(1, 0, z_chans);
            at::Tensor logvar = moments.slice(1, z_chans, 2 * z_chans).clamp(-30.0, 20.0);
            const at::Tensor eps_i = eps.narrow(0, i, 1);
            if (!mean.sizes().equals(eps_i.sizes())) {
              return absl::InternalError(absl::StrCat("VAE training: the encoder's latent is ", c10::str(mean.sizes()),
                                                      ", not the ", c10::str(eps_i.sizes()), " the step drew noise for"));
            }
            at::Tensor z = o.posterior_mean ? mean : mean + (0.5 * logvar).exp() * eps_i;
            // The clip latent's RMS, held constant in the gradient: relative noise and the anchor scale by it.
            const at::Tensor rms = mean.detach().pow(2).mean().sqrt();
            if (extra.defined()) {
              at::Tensor noise = extra.narrow(0, i, 1);
              if (o.latent_noise_relative) noise = noise * rms;
              z = z + noise;
            }
            MAGI_ASSIGN_OR_RETURN(at::Tensor rec, vae.DecodeTile(z));
            at::Tensor mse = (rec - xi).pow(2).mean();
            at::Tensor kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean();
            clip_mse[static_cast<size_t>(i)] = mse.item<double>();
            at::Tensor loss = mse + o.kl_weight * kl;
            if (anchor.defined()) {
              const at::Tensor scale = rms + 1e-6;
              const at::Tensor target = anchor.narrow(0, i, 1) * scale;
              loss = loss + o.colour_anchor * (mean.slice(1, 0, 3) - target).pow(2).mean() / scale.pow(2);
            }
            return loss;
          }));
      if (!std::isfinite(loss_value)) {
        return absl::InternalError(absl::StrCat("VAE training: the loss is ", loss_value, " at step ", step));
      }
      adam.Step(o.learning_rate);
      double mse_sum = 0;
      for (double m : clip_mse) mse_sum += m;
      if (o.on_step) o.on_step(step, loss_value, mse_sum / o.batch / 4.0);
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("VAE training failed: ", e.what()));
  }
  adam.Finish();
  MAGI_ASSIGN_OR_RETURN(result.heldout_mse_after, ReconstructionMse(vae, heldout));
  MAGI_ASSIGN_OR_RETURN(result.colour_share_after, LatentColourShare(vae, o.heldout_scenes, o.frames, o.size));
  MAGI_ASSIGN_OR_RETURN(result.colour_error_after, ObjectColourError(vae, o.heldout_scenes, o.frames, o.size));
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace magi
