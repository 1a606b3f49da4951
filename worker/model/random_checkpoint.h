// Random DiT checkpoints with the reference's exact key names, for tests, benchmarks and
// the embedded "tiny" model. Distributions follow the golden vectors' generator (linear
// weights N(0, 1/fan_in), biases N(0, 0.1), LN1p weights N(0, 0.1), plain LN weights
// 1 + N(0, 0.1), null caption rows N(0, 1), rope bands = default x (1 + U(-0.1, 0.1))), so
// activations stay O(1) through any depth. Deterministic for a given seed.
#ifndef MAGI_WORKER_MODEL_RANDOM_CHECKPOINT_H_
#define MAGI_WORKER_MODEL_RANDOM_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "worker/model/config.h"

namespace magi {

struct RandomCheckpointOptions {
  uint64_t seed = 1000;
  // Store layers 1..L-2 as FP8 (F8_E4M3 weights with weight/input/smooth scales), as the
  // released *_distill_quant checkpoints do.
  bool fp8 = false;
};

// All parameters of `config`, stored in params_dtype (norms and embedders in float32).
std::map<std::string, at::Tensor> RandomDitWeights(const ModelConfig& config, const RandomCheckpointOptions& options,
                                                   std::vector<std::string>* e4m3_keys);

// Writes RandomDitWeights to `path` as one safetensors file.
absl::Status WriteRandomDitCheckpoint(const ModelConfig& config, const std::string& path,
                                      const RandomCheckpointOptions& options = {});

// A small but complete model configuration (2 layers, hidden 128, GLU, half_channel_vae),
// the shape of golden config A, with runtime/engine settings for a short t2v video.
MagiConfig TinyMagiConfig();

}  // namespace magi

#endif  // MAGI_WORKER_MODEL_RANDOM_CHECKPOINT_H_
