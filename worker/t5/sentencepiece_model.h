// libsentencepiece behind a locally loaded shim (sentencepiece_shim.cc explains why).
//
// Thread safety: immutable after Load(); Encode() is safe from several threads.
#ifndef MAGI_WORKER_T5_SENTENCEPIECE_MODEL_H_
#define MAGI_WORKER_T5_SENTENCEPIECE_MODEL_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace magi {

class SentencePieceModel {
 public:
  // nullptr with *error set on failure.
  static std::unique_ptr<SentencePieceModel> Load(const std::string& path, std::string* error);
  ~SentencePieceModel();
  SentencePieceModel(const SentencePieceModel&) = delete;
  SentencePieceModel& operator=(const SentencePieceModel&) = delete;

  bool Encode(std::string_view text, std::vector<int>* ids, std::string* error) const;
  int pad_id() const;
  int eos_id() const;
  int piece_size() const;

 private:
  SentencePieceModel();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace magi

#endif  // MAGI_WORKER_T5_SENTENCEPIECE_MODEL_H_
