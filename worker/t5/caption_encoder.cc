#include "worker/t5/caption_encoder.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/t5/caption_clean.h"
#include "worker/t5/t5_encoder.h"
#include "worker/t5/t5_tokenizer.h"
#include "worker/t5/utf8.h"

namespace magi {

absl::Status ValidatePrompt(std::string_view prompt, int64_t max_bytes) {
  if (static_cast<int64_t>(prompt.size()) > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("prompt: ", prompt.size(), " bytes is over the limit of ",
                                                   max_bytes, " bytes (UTF-8)"));
  }
  const size_t bad = FirstInvalidUtf8(prompt);
  if (bad != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("prompt: not valid UTF-8 (first invalid byte at offset ", bad, ")"));
  }
  bool blank = true;
  for (char c : prompt) blank = blank && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v');
  if (blank) return absl::InvalidArgumentError("prompt: must not be empty or only whitespace (1 to max bytes)");
  return absl::OkStatus();
}

CaptionEncoder::CaptionEncoder(const T5Tokenizer* tokenizer, const T5Encoder* encoder, CaptionEncoderOptions options)
    : tokenizer_(tokenizer), encoder_(encoder), options_(options), cache_(options.cache_bytes) {}

absl::StatusOr<EncodedCaption> CaptionEncoder::Encode(std::string_view prompt) {
  MAGI_RETURN_IF_ERROR(ValidatePrompt(prompt, options_.max_prompt_bytes));
  EncodedCaption out;
  MAGI_ASSIGN_OR_RETURN(out.cleaned, CleanCaption(prompt));
  const std::string key = absl::StrCat(options_.max_length, ":", out.cleaned);
  if (options_.cache_bytes > 0) {
    if (auto hit = cache_.Lookup(key)) {
      out.embedding = hit->embedding;
      out.mask = hit->mask;
      out.valid_tokens = out.mask.sum().item<int64_t>();
      out.cache_hit = true;
      return out;
    }
  }
  MAGI_ASSIGN_OR_RETURN(T5Tokens tokens, tokenizer_->Encode(out.cleaned, options_.max_length));
  const int64_t L = options_.max_length;
  at::Tensor ids = at::tensor(tokens.input_ids, at::TensorOptions().dtype(at::kLong)).view({1, L});
  at::Tensor mask = at::tensor(tokens.attention_mask, at::TensorOptions().dtype(at::kLong)).view({1, L});
  MAGI_ASSIGN_OR_RETURN(at::Tensor embedding, encoder_->Encode(ids, mask));
  out.embedding = embedding.to(at::kCPU);  // a T5 on a GPU: the cache and the engine's caption rows live on the host
  out.mask = mask;
  out.valid_tokens = tokens.valid();
  if (options_.cache_bytes > 0) cache_.Insert(key, CachedEmbedding{out.embedding, out.mask});
  return out;
}

}  // namespace magi
