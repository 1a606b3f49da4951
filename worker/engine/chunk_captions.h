// The caption rows every chunk is conditioned on (spec pipeline.md §4.4-4.7, the
// reference's extract_feature_for_inference): row 0 = the chunk's prompt embedding (prefix
// chunks: the null embedding with an all-zero mask), row 1 = the null caption embedding
// with a mask of ones over its first 50 tokens. Chunk-wise prompts map each generated chunk
// to the prompt whose from_chunk is the last one at or before it; the default (one prompt)
// is the reference's broadcast. Rows are shared, not copied, between chunks of one prompt.
//
// Special tokens (§4.4, the run scripts' PAD_HQ / PAD_DURATION, and NEG_PROMPT §4.5) are
// prepended here when given; a prompt whose mask is all zero falls back to the null rows
// (reference rule). This is the one implementation of caption rows: the engine, the served
// path, `magi generate` and the golden checker all come here, and SelectPromptTokens is the
// one way from "which tokens are enabled" (SpecialTokenFlags) to the tokens used.
#ifndef MAGI_WORKER_ENGINE_CHUNK_CAPTIONS_H_
#define MAGI_WORKER_ENGINE_CHUNK_CAPTIONS_H_

#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "worker/model/special_token_flags.h"

namespace magi {

struct EncodedChunkPrompt {
  int from_chunk = 0;  // first generated chunk (0 = the first chunk after the prefix)
  at::Tensor caption;  // [L, Cy] (or [1, L, Cy] / [1, 1, L, Cy]) T5 output
  at::Tensor mask;     // [L] (or [1, L]) 0/1 validity
};

// 4096-d (caption_channels) token vectors from special_tokens.npz, already rounded through
// float16 as the reference does (§4.6). Empty = none (the reference without PAD_* env).
struct PromptTokens {
  // Prepended to every generated chunk's caption in this application order (each one goes
  // to position 0 with mask 1, the sequence truncated back to L): STATIC_FIRST_FRAMES,
  // DYNAMIC_FIRST_FRAMES, BORDERNESS, HQ, THREE_D_MODEL, TWO_D_ANIME as enabled. [Cy] each.
  std::vector<at::Tensor> prompt_tokens;
  // DURATION_1..8 ([8, Cy], other_tokens rows 7..14), applied last: generated chunk i of
  // nd gets row min(nd − 1 − i, 7). Undefined = no duration token.
  at::Tensor duration_tokens;
  // NEG_PROMPT: prepended to the null rows in this order (CAPTION, LOGO, TRANS, BORDERNESS);
  // the null mask is not updated (reference quirk).
  std::vector<at::Tensor> negative_tokens;
};

class SpecialTokens;

// The enabled tokens of `flags` taken from `tokens` in the reference's application order
// (get_special_token_keys / get_negative_special_token_keys). No flag on = empty (tokens may
// be null). Errors: a flag is on but `tokens` is null (names the flags and asks for
// special_tokens.npz), or the tokens' width differs from `caption_channels`.
absl::StatusOr<PromptTokens> SelectPromptTokens(const SpecialTokenFlags& flags, const SpecialTokens* tokens,
                                                int64_t caption_channels);

struct ChunkCaptions {
  std::vector<at::Tensor> text_rows;   // chunk_num entries, [L, Cy] float32
  std::vector<at::Tensor> text_masks;  // chunk_num entries, [L] float32 0/1
  at::Tensor null_row;                 // [L, Cy] float32
  at::Tensor null_mask;                // [L] float32, ones over the first min(50, L) tokens
};

// text_rows of prefix chunks are the plain null embedding (no negative tokens) with an
// all-zero mask, as the reference's _process_txt_embeddings; null_row carries them.
// Validates shapes (errors name prompts[i].caption / .mask / .from_chunk and the expected
// shape) and builds the rows for `chunk_num` chunks of which the first `chunk_offset` are
// prefix chunks. from_chunk must start at 0 and increase strictly, each below the number
// of generated chunks (chunk_num − chunk_offset).
absl::StatusOr<ChunkCaptions> BuildChunkCaptions(const std::vector<EncodedChunkPrompt>& prompts, const at::Tensor& null_caption,
                                                 int chunk_num, int chunk_offset,
                                                 const PromptTokens& special = PromptTokens());

}  // namespace magi

#endif  // MAGI_WORKER_ENGINE_CHUNK_CAPTIONS_H_
