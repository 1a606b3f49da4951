#include "worker/t5/sentencepiece_model.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace magi {
namespace {

// The shim library's entry points (see sentencepiece_shim.cc for why it is loaded locally).
struct ShimApi {
  void* (*load)(const char*, char*, size_t) = nullptr;
  void (*free)(void*) = nullptr;
  int (*info)(void*, int) = nullptr;
  int (*encode)(void*, const char*, size_t, void (*)(void*, const int*, size_t), void*, char*, size_t) = nullptr;
  std::string error;
};

const ShimApi& Shim() {
  static const ShimApi* api = [] {
    auto* a = new ShimApi();
    const char* env = std::getenv("MAGI_SPM_SHIM");
    const std::string path = env && *env ? env : MAGI_SPM_SHIM_PATH;
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) {
      const char* e = dlerror();
      a->error = "cannot load the sentencepiece shim '" + path + "' (set MAGI_SPM_SHIM): " + (e ? e : "?");
      return a;
    }
    a->load = reinterpret_cast<decltype(a->load)>(dlsym(h, "magi_spm_load"));
    a->free = reinterpret_cast<decltype(a->free)>(dlsym(h, "magi_spm_free"));
    a->info = reinterpret_cast<decltype(a->info)>(dlsym(h, "magi_spm_info"));
    a->encode = reinterpret_cast<decltype(a->encode)>(dlsym(h, "magi_spm_encode"));
    if (!a->load || !a->free || !a->info || !a->encode) a->error = "sentencepiece shim '" + path + "' lacks symbols";
    return a;
  }();
  return *api;
}

}  // namespace

struct SentencePieceModel::Impl {
  void* handle = nullptr;
  ~Impl() {
    if (handle) Shim().free(handle);
  }
};

SentencePieceModel::SentencePieceModel() : impl_(std::make_unique<Impl>()) {}
SentencePieceModel::~SentencePieceModel() = default;

std::unique_ptr<SentencePieceModel> SentencePieceModel::Load(const std::string& path, std::string* error) {
  const ShimApi& api = Shim();
  if (!api.error.empty()) {
    *error = api.error;
    return nullptr;
  }
  std::unique_ptr<SentencePieceModel> m(new SentencePieceModel());
  char err[512] = {0};
  m->impl_->handle = api.load(path.c_str(), err, sizeof(err));
  if (!m->impl_->handle) {
    *error = err;
    return nullptr;
  }
  return m;
}

bool SentencePieceModel::Encode(std::string_view text, std::vector<int>* ids, std::string* error) const {
  char err[512] = {0};
  ids->clear();
  auto sink = [](void* ctx, const int* p, size_t n) { static_cast<std::vector<int>*>(ctx)->assign(p, p + n); };
  if (Shim().encode(impl_->handle, text.data(), text.size(), sink, ids, err, sizeof(err)) != 0) {
    *error = err;
    return false;
  }
  return true;
}

int SentencePieceModel::pad_id() const { return Shim().info(impl_->handle, 0); }
int SentencePieceModel::eos_id() const { return Shim().info(impl_->handle, 1); }
int SentencePieceModel::piece_size() const { return Shim().info(impl_->handle, 2); }

}  // namespace magi
