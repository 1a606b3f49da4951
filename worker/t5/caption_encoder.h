// The text side end to end: validate the prompt, clean it (twice, as the reference),
// tokenise to max_length, and run the T5 encoder, with an embedding cache keyed by the
// cleaned text (prompts that clean to the same string share one entry).
//
// Thread safety: Encode() may be called from several threads. Does not own the tokenizer
// or the encoder; both must outlive it.
#ifndef MAGI_WORKER_T5_CAPTION_ENCODER_H_
#define MAGI_WORKER_T5_CAPTION_ENCODER_H_

#include <string>
#include <string_view>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "worker/t5/embedding_cache.h"

namespace magi {

class T5Encoder;
class T5Tokenizer;

struct CaptionEncoderOptions {
  int64_t max_length = 800;              // caption_max_length
  int64_t max_prompt_bytes = 16 * 1024;  // documented limit on the raw prompt (UTF-8 bytes)
  int64_t cache_bytes = 256ll << 20;     // embedding cache budget; 0 disables caching
};

struct EncodedCaption {
  std::string cleaned;   // the text that was tokenised
  at::Tensor embedding;  // [1, max_length, d_model] float32 on the CPU (wherever the T5 runs)
  at::Tensor mask;       // [1, max_length] int64
  int64_t valid_tokens = 0;
  bool cache_hit = false;
};

// Checks a prompt at the edge: non-empty (not only whitespace), at most `max_bytes` bytes,
// valid UTF-8. Errors name the field "prompt" and the allowed range.
absl::Status ValidatePrompt(std::string_view prompt, int64_t max_bytes);

class CaptionEncoder {
 public:
  CaptionEncoder(const T5Tokenizer* tokenizer, const T5Encoder* encoder, CaptionEncoderOptions options);
  CaptionEncoder(const CaptionEncoder&) = delete;
  CaptionEncoder& operator=(const CaptionEncoder&) = delete;

  absl::StatusOr<EncodedCaption> Encode(std::string_view prompt);
  const EmbeddingCache& cache() const { return cache_; }

 private:
  const T5Tokenizer* tokenizer_;
  const T5Encoder* encoder_;
  CaptionEncoderOptions options_;
  EmbeddingCache cache_;
};

}  // namespace magi

#endif  // MAGI_WORKER_T5_CAPTION_ENCODER_H_
