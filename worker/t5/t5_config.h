// The subset of HF transformers' T5Config that a T5 v1.1 encoder needs.
//
// Parsed from a HF `config.json` (T5Config fields). Parsing is strict about what matters for
// the encoder's mathematics: every size must be present and positive, the feed-forward must
// be "gated-gelu" (T5 v1.1; HF maps it to the tanh-approximate `gelu_new`), model_type (when
// present) must be "t5". Fields of the decoder and training-only fields are ignored, as HF
// configs carry many of them. Plain value type; thread-compatible.
#ifndef MAGI_WORKER_T5_T5_CONFIG_H_
#define MAGI_WORKER_T5_T5_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace magi {

struct T5Config {
  int64_t vocab_size = 0;     // rows of shared.weight (32128 for t5-v1_1-xxl)
  int64_t d_model = 0;        // 4096 for XXL
  int64_t d_kv = 0;           // per-head width (64)
  int64_t d_ff = 0;           // gated FFN width (10240)
  int64_t num_layers = 0;     // encoder blocks (24)
  int64_t num_heads = 0;      // 64
  int64_t relative_attention_num_buckets = 32;    // HF default when absent
  int64_t relative_attention_max_distance = 128;  // HF default when absent
  double layer_norm_epsilon = 1e-6;               // HF default when absent
  int64_t pad_token_id = 0;
  int64_t eos_token_id = 1;

  int64_t inner_dim() const { return num_heads * d_kv; }
};

// Parses config JSON text; `source` names the file in error messages. Errors name the field
// and the allowed range or values.
absl::StatusOr<T5Config> ParseT5Config(const std::string& json_text, const std::string& source);
// Reads and parses a config.json file.
absl::StatusOr<T5Config> LoadT5Config(const std::string& path);

}  // namespace magi

#endif  // MAGI_WORKER_T5_T5_CONFIG_H_
