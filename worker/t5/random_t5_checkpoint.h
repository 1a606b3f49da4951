// Random T5 v1.1 encoder checkpoints with HF's exact key names, for tests, benchmarks and the
// embedded "tiny" model (worker/runner/tiny_model.h). Distributions keep activations O(1):
// linear weights N(0, 1/fan_in), except q at N(0, 1/d_model^2) (T5 attention has no
// 1/sqrt(d_kv)), embeddings N(0, 1), relative attention bias N(0, 0.5^2), RMSNorm weights
// 1 + N(0, 0.1^2). Deterministic for a given seed.
//
// Thread safety: reentrant.
#ifndef MAGI_WORKER_T5_RANDOM_T5_CHECKPOINT_H_
#define MAGI_WORKER_T5_RANDOM_T5_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "worker/t5/t5_config.h"

namespace magi {

// Every tensor a T5EncoderModel state_dict holds for `config` (shared.weight, the first
// block's relative_attention_bias, each block's norms / attention / gated FFN, the final
// norm), float32 on the CPU.
std::map<std::string, at::Tensor> RandomT5Weights(const T5Config& config, uint64_t seed);

// Writes a HF T5EncoderModel folder that T5Encoder::LoadFolder reads: `dir`/config.json (the
// T5Config fields plus HF's architecture and activation names) and `dir`/model.safetensors.
// Creates `dir`. Errors name the file.
absl::Status WriteRandomT5Folder(const T5Config& config, const std::string& dir, uint64_t seed);

}  // namespace magi

#endif  // MAGI_WORKER_T5_RANDOM_T5_CHECKPOINT_H_
