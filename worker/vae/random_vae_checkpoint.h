// Random ViTVAE checkpoints with the reference's exact key names, for tests, benchmarks and
// small end-to-end runs. Distributions follow the golden VAE generator (Linear/Conv weights
// N(0, 1/fan_in), biases N(0, 0.1^2), LayerNorm weights 1 + N(0, 0.1^2), cls_token and
// pos_embed N(0, 0.5^2)), so activations stay O(1) at any depth. Deterministic per seed.
#ifndef MAGI_WORKER_VAE_RANDOM_VAE_CHECKPOINT_H_
#define MAGI_WORKER_VAE_RANDOM_VAE_CHECKPOINT_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "worker/vae/vae_config.h"

namespace magi {

// Every state_dict entry of ViTVAE(ddconfig = config), float32 on the CPU.
std::map<std::string, at::Tensor> RandomVaeWeights(const VaeConfig& config, uint64_t seed = 5000);

// Writes a released-layout VAE folder: `folder`/config.json ({"_class_name": "ViTVAE",
// "model_type": "vit", "ddconfig": ...}) and `folder`/diffusion_pytorch_model.safetensors
// (float32). Creates the folder.
absl::Status WriteRandomVaeFolder(const VaeConfig& config, const std::string& folder, uint64_t seed = 5000);

// Writes `weights` (state_dict keys, any float dtype) as a released-layout VAE folder with
// `config`, as above (the trainer's output; WriteRandomVaeFolder uses it).
absl::Status WriteVaeFolder(const VaeConfig& config, const std::map<std::string, at::Tensor>& weights,
                            const std::string& folder);

// The released VAE's ddconfig (spec pipeline.md §5.2).
VaeConfig ReleasedVaeConfig();

}  // namespace magi

#endif  // MAGI_WORKER_VAE_RANDOM_VAE_CHECKPOINT_H_
