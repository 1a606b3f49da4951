// MAGI-1's special text tokens (spec/pipeline.md §4.4-4.6), read from special_tokens.npz, and
// the caption rows built from T5 outputs: the conditional row per denoised chunk with the
// enabled special tokens prepended, and the null rows.
//
// SpecialTokens is immutable after Load() and safe to share between threads.
#ifndef MAGI_WORKER_T5_SPECIAL_TOKENS_H_
#define MAGI_WORKER_T5_SPECIAL_TOKENS_H_

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace magi {

class SpecialTokens {
 public:
  // Reads an uncompressed ("stored") ZIP of NPY arrays with `caption_token` [1,C],
  // `logo_token` [1,C] and `other_tokens` [>=17,C] (float16/32/64, little-endian, C order).
  // Values are rounded to float16 and returned as float32, as the reference does.
  static absl::StatusOr<std::unique_ptr<SpecialTokens>> Load(const std::string& npz_path);
  // From tensors directly (tests); same checks and fp16 rounding.
  static absl::StatusOr<std::unique_ptr<SpecialTokens>> FromTensors(const at::Tensor& caption, const at::Tensor& logo,
                                                                    const at::Tensor& other);

  int64_t width() const { return caption_.size(-1); }
  const at::Tensor& caption() const { return caption_; }  // [1, C] float32
  const at::Tensor& logo() const { return logo_; }
  // other_tokens row: 0 TRANS, 1 HQ, 2 STATIC_FIRST_FRAMES, 3 DYNAMIC_FIRST_FRAMES,
  // 4 BORDERNESS, 7..14 DURATION_1..8, 15 THREE_D_MODEL, 16 TWO_D_ANIME.
  at::Tensor other(int64_t row) const;  // [1, C]

 private:
  SpecialTokens() = default;
  at::Tensor caption_, logo_, other_;
};

// Which special tokens to prepend; the reference reads these from PAD_* / NEG_PROMPT
// environment variables, here they are explicit options (all off by default; the shipped
// run scripts set hq and duration).
struct CaptionRowOptions {
  bool static_first_frames = false;
  bool dynamic_first_frames = false;
  bool borderness = false;
  bool hq = false;
  bool three_d_model = false;
  bool two_d_anime = false;
  bool duration = false;
  bool negative_prompt = false;  // prepend CAPTION, LOGO, TRANS, BORDERNESS to null rows
};

struct CaptionRows {
  at::Tensor y;     // [2, chunk_num, L, C] float32: row 0 conditional, row 1 null
  at::Tensor mask;  // [2, chunk_num, L] float32 (only != 0 matters)
};

// Builds Y and M (spec §4.4-4.5). `captions` holds one [1, L, C] embedding per denoised chunk
// (chunk-wise prompts), or exactly one that is broadcast to every denoised chunk (the
// reference behaviour); `masks` likewise [1, L] (any integer or float type). The first
// `chunk_offset` chunks (prefix) get null rows with an all-zero mask. `null_caption` is the
// DiT's [L, C] null_caption_embedding. `tokens` may be null when no token is enabled.
// Sequences are cut back to L after each prepend (the reference hard-codes 800 = its L).
absl::StatusOr<CaptionRows> BuildCaptionRows(const std::vector<at::Tensor>& captions,
                                             const std::vector<at::Tensor>& masks, const at::Tensor& null_caption,
                                             int64_t chunk_num, int64_t chunk_offset, const SpecialTokens* tokens,
                                             const CaptionRowOptions& options);

}  // namespace magi

#endif  // MAGI_WORKER_T5_SPECIAL_TOKENS_H_
