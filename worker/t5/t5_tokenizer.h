// T5's tokenizer: a SentencePiece unigram model (spiece.model) used with the rules of HF's
// T5TokenizerFast at `max_length=L, padding="max_length", truncation=True,
// add_special_tokens=True` (spec/pipeline.md §4.2):
//   ids = EncodeAsIds(text)[:L-1] + [</s>], padded with <pad> to L; mask 1 on ids, 0 on pads.
// The model's own normalizer (nmt_nfkc for T5) runs inside libsentencepiece.
//
// Not emulated: HF also turns the literal strings "</s>", "<pad>", "<unk>", "<extra_id_N>"
// inside the text into their special ids; here they are ordinary text (cleaned captions
// only contain them if the user typed them, e.g. as "&lt;/s&gt;").
//
// Thread safety: immutable after Load(); Encode() is safe from several threads.
#ifndef MAGI_WORKER_T5_T5_TOKENIZER_H_
#define MAGI_WORKER_T5_T5_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace magi {

class SentencePieceModel;

struct T5Tokens {
  std::vector<int64_t> input_ids;       // length max_length
  std::vector<int64_t> attention_mask;  // length max_length, 1 = real token incl. </s>
  int64_t num_pieces = 0;               // SentencePiece pieces before truncation
  int64_t valid() const { return static_cast<int64_t>(std::min<size_t>(num_pieces + 1, input_ids.size())); }
};

class T5Tokenizer {
 public:
  // Loads spiece.model; fails naming the file if it is missing or not a SentencePiece model,
  // or if its pad/eos ids are not T5's (0 and 1).
  static absl::StatusOr<std::unique_ptr<T5Tokenizer>> Load(const std::string& spiece_path);
  ~T5Tokenizer();
  T5Tokenizer(const T5Tokenizer&) = delete;
  T5Tokenizer& operator=(const T5Tokenizer&) = delete;

  // `text` must be valid UTF-8; max_length in [1, 1 << 20].
  absl::StatusOr<T5Tokens> Encode(std::string_view text, int64_t max_length) const;
  // The SentencePiece ids of `text` (no </s>, no truncation).
  absl::StatusOr<std::vector<int>> Pieces(std::string_view text) const;

  int64_t pad_id() const { return 0; }
  int64_t eos_id() const { return 1; }
  // Pieces of the model plus HF's 100 <extra_id_N> tokens.
  int64_t vocab_size() const;

 private:
  T5Tokenizer();
  std::unique_ptr<SentencePieceModel> sp_;
  std::string path_;
};

}  // namespace magi

#endif  // MAGI_WORKER_T5_T5_TOKENIZER_H_
