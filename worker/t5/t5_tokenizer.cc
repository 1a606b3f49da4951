#include "worker/t5/t5_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/t5/sentencepiece_model.h"
#include "worker/t5/utf8.h"

namespace magi {

T5Tokenizer::T5Tokenizer() = default;
T5Tokenizer::~T5Tokenizer() = default;

absl::StatusOr<std::unique_ptr<T5Tokenizer>> T5Tokenizer::Load(const std::string& spiece_path) {
  std::unique_ptr<T5Tokenizer> tok(new T5Tokenizer());
  tok->path_ = spiece_path;
  std::string error;
  tok->sp_ = SentencePieceModel::Load(spiece_path, &error);
  if (!tok->sp_) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer model '", spiece_path, "' cannot be loaded as SentencePiece: ", error));
  }
  if (tok->sp_->pad_id() != 0 || tok->sp_->eos_id() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer model '", spiece_path,
                                                   "' does not use T5's ids (need pad_id 0 and eos_id 1, got ",
                                                   tok->sp_->pad_id(), " and ", tok->sp_->eos_id(), ")"));
  }
  return tok;
}

int64_t T5Tokenizer::vocab_size() const { return sp_->piece_size() + 100; }

absl::StatusOr<std::vector<int>> T5Tokenizer::Pieces(std::string_view text) const {
  if (!IsValidUtf8(text)) return absl::InvalidArgumentError("tokenizer input is not valid UTF-8");
  std::vector<int> ids;
  std::string error;
  if (!sp_->Encode(text, &ids, &error)) {
    return absl::InternalError(absl::StrCat("tokenizer '", path_, "' failed: ", error));
  }
  return ids;
}

absl::StatusOr<T5Tokens> T5Tokenizer::Encode(std::string_view text, int64_t max_length) const {
  if (max_length < 1 || max_length > (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer max_length must be in [1, 1048576], got ", max_length));
  }
  MAGI_ASSIGN_OR_RETURN(auto pieces, Pieces(text));
  T5Tokens out;
  out.num_pieces = static_cast<int64_t>(pieces.size());
  out.input_ids.assign(max_length, pad_id());
  out.attention_mask.assign(max_length, 0);
  const int64_t keep = std::min<int64_t>(out.num_pieces, max_length - 1);
  for (int64_t i = 0; i < keep; ++i) {
    out.input_ids[i] = pieces[i];
    out.attention_mask[i] = 1;
  }
  out.input_ids[keep] = eos_id();
  out.attention_mask[keep] = 1;
  return out;
}

}  // namespace magi
