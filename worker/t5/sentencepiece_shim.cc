// Built as its own shared library (magi_spm) and loaded by sentencepiece_model.cc with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND). Debian's libsentencepiece exports a bundled copy of
// protobuf-lite whose symbols, if loaded globally next to LibTorch's libprotobuf, interpose
// on it and crash at start-up. Loaded locally and deep-bound, each library keeps its own.
// Plain C interface: nothing of sentencepiece's (or protobuf's) types crosses the boundary.
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include <sentencepiece_processor.h>

namespace {
void CopyError(const std::string& msg, char* err, size_t errlen) {
  if (err && errlen) {
    std::strncpy(err, msg.c_str(), errlen - 1);
    err[errlen - 1] = 0;
  }
}
}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* magi_spm_load(const char* path, char* err, size_t errlen) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  const auto status = sp->Load(path);
  if (!status.ok()) {
    CopyError(status.ToString(), err, errlen);
    delete sp;
    return nullptr;
  }
  return sp;
}

__attribute__((visibility("default"))) void magi_spm_free(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

// 0 = pad id, 1 = eos id, 2 = number of pieces.
__attribute__((visibility("default"))) int magi_spm_info(void* handle, int which) {
  const auto* sp = static_cast<const sentencepiece::SentencePieceProcessor*>(handle);
  return which == 0 ? sp->pad_id() : which == 1 ? sp->eos_id() : sp->GetPieceSize();
}

// Calls sink(ctx, ids, n) once with the ids; returns 0 on success.
__attribute__((visibility("default"))) int magi_spm_encode(void* handle, const char* text, size_t len,
                                                           void (*sink)(void*, const int*, size_t), void* ctx,
                                                           char* err, size_t errlen) {
  const auto* sp = static_cast<const sentencepiece::SentencePieceProcessor*>(handle);
  std::vector<int> ids;
  const auto status = sp->Encode(std::string(text, len), &ids);
  if (!status.ok()) {
    CopyError(status.ToString(), err, errlen);
    return 1;
  }
  sink(ctx, ids.data(), ids.size());
  return 0;
}

}  // extern "C"
