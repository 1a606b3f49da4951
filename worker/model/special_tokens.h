// MAGI-1's special caption tokens (spec/pipeline.md §4.6): the model folder's
// special_tokens.npz, read (and written, for generated sets) here next to the other model
// files. Which tokens a run uses is SpecialTokenFlags (special_token_flags.h); the caption
// rows they go into are built by the engine (worker/engine/chunk_captions.h).
//
// SpecialTokens is immutable after Load() and safe to share between threads.
#ifndef MAGI_WORKER_MODEL_SPECIAL_TOKENS_H_
#define MAGI_WORKER_MODEL_SPECIAL_TOKENS_H_

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
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

// Writes `caption` [1,C], `logo` [1,C] and `other` [N>=17,C] as special_tokens.npz in the
// released layout (what np.savez writes: a stored ZIP with a central directory of NPY v1.0
// float64 arrays), readable by Load() and by numpy. Used for generated model sets.
absl::Status WriteSpecialTokens(const std::string& npz_path, const at::Tensor& caption, const at::Tensor& logo,
                                const at::Tensor& other);

}  // namespace magi

#endif  // MAGI_WORKER_MODEL_SPECIAL_TOKENS_H_
