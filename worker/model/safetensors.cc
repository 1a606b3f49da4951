#include "worker/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace magi {
namespace {

at::ScalarType AtenType(StDtype d) {
  switch (d) {
    case StDtype::kF32: return at::kFloat;
    case StDtype::kF16: return at::kHalf;
    case StDtype::kBF16: return at::kBFloat16;
    case StDtype::kI64: return at::kLong;
    case StDtype::kI32: return at::kInt;
    case StDtype::kBool: return at::kBool;
    case StDtype::kF8E4M3:
    case StDtype::kU8: return at::kByte;
  }
  return at::kByte;
}

absl::StatusOr<StDtype> FromAten(at::ScalarType t, const std::string& key) {
  switch (t) {
    case at::kFloat: return StDtype::kF32;
    case at::kHalf: return StDtype::kF16;
    case at::kBFloat16: return StDtype::kBF16;
    case at::kLong: return StDtype::kI64;
    case at::kInt: return StDtype::kI32;
    case at::kBool: return StDtype::kBool;
    case at::kByte: return StDtype::kU8;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: tensor '", key, "' has unsupported dtype ", c10::toString(t)));
  }
}

float E4M3ToFloat(uint8_t code) {
  int sign = code >> 7, exp = (code >> 3) & 0xf, man = code & 0x7;
  float v;
  if (exp == 0xf && man == 0x7) return std::nanf("");
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(man) / 8.0f, -6);
  } else {
    v = std::ldexp(1.0f + static_cast<float>(man) / 8.0f, exp - 7);
  }
  return sign ? -v : v;
}

}  // namespace

struct SafetensorsFile::Mapping {
  void* addr = nullptr;
  size_t length = 0;
  ~Mapping() {
    if (addr != nullptr && addr != MAP_FAILED) munmap(addr, length);
  }
};

SafetensorsFile::~SafetensorsFile() = default;

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  auto err = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file '", path, "': ", what));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("safetensors file '", path, "': cannot open: ", std::strerror(errno)));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return err("not a regular file");
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ < 8) {
    ::close(fd);
    return err(absl::StrCat("file is ", file->size_, " bytes, shorter than the 8-byte header length"));
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->length = file->size_;
  // MAP_PRIVATE + PROT_WRITE: tensors may be modified in place by callers without touching the
  // file; pages are only copied if written.
  mapping->addr = mmap(nullptr, file->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping->addr == MAP_FAILED) {
    mapping->addr = nullptr;
    return err(absl::StrCat("mmap failed: ", std::strerror(errno)));
  }
  MAGI_ASSIGN_OR_RETURN(auto header,
                        ParseSafetensorsHeader(static_cast<const uint8_t*>(mapping->addr), file->size_, path));
  file->data_start_ = header.data_start;
  file->tensors_ = std::move(header.tensors);
  file->metadata_ = std::move(header.metadata);
  for (size_t i = 0; i < file->tensors_.size(); ++i) file->index_[file->tensors_[i].name] = i;
  file->mapping_ = std::move(mapping);
  return file;
}

std::vector<std::string> SafetensorsFile::Keys() const {
  std::vector<std::string> keys;
  keys.reserve(tensors_.size());
  for (const auto& t : tensors_) keys.push_back(t.name);
  return keys;
}

const StTensorInfo* SafetensorsFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<at::Tensor> SafetensorsFile::Get(const std::string& name) const {
  const StTensorInfo* info = Find(name);
  if (info == nullptr) {
    return absl::NotFoundError(absl::StrCat("safetensors file '", path_, "': no tensor '", name, "'"));
  }
  uint8_t* ptr = static_cast<uint8_t*>(mapping_->addr) + data_start_ + info->begin;
  auto opts = at::TensorOptions().dtype(AtenType(info->dtype)).device(at::kCPU);
  std::shared_ptr<Mapping> keep = mapping_;
  const size_t elem = static_cast<size_t>(StDtypeSize(info->dtype));
  if (info->numel() == 0) return at::empty(info->shape, opts);
  if (reinterpret_cast<uintptr_t>(ptr) % elem != 0) {
    // Misaligned data (legal in the format): copy instead of aliasing.
    at::Tensor out = at::empty(info->shape, opts);
    std::memcpy(out.data_ptr(), ptr, info->end - info->begin);
    return out;
  }
  return at::from_blob(ptr, info->shape, [keep](void*) mutable { keep.reset(); }, opts);
}

at::Tensor DecodeE4M3(const at::Tensor& codes) {
  static const std::vector<float> table = [] {
    std::vector<float> t(256);
    for (int i = 0; i < 256; ++i) t[i] = E4M3ToFloat(static_cast<uint8_t>(i));
    return t;
  }();
  at::Tensor lut = at::from_blob(const_cast<float*>(table.data()), {256}, at::kFloat);
  return lut.index_select(0, codes.contiguous().view(-1).to(at::kLong)).view(codes.sizes());
}

at::Tensor EncodeE4M3(const at::Tensor& values) {
  // Exhaustive nearest search over the 127 non-negative finite codes; ties to the even code.
  at::Tensor v = values.to(at::kFloat).contiguous();
  at::Tensor out = at::empty(v.sizes(), at::TensorOptions().dtype(at::kByte));
  const float* src = v.data_ptr<float>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  float pos[127];
  for (int i = 0; i < 127; ++i) pos[i] = E4M3ToFloat(static_cast<uint8_t>(i));
  for (int64_t n = 0; n < v.numel(); ++n) {
    float x = src[n];
    if (std::isnan(x)) { dst[n] = 0x7f; continue; }
    uint8_t sign = std::signbit(x) ? 0x80 : 0;
    float a = std::min(std::fabs(x), 448.0f);
    int lo = static_cast<int>(std::upper_bound(pos, pos + 127, a) - pos) - 1;
    int best = lo;
    if (lo < 126) {
      float dl = a - pos[lo], dh = pos[lo + 1] - a;
      if (dh < dl || (dh == dl && ((lo + 1) % 2 == 0))) best = lo + 1;
    }
    dst[n] = static_cast<uint8_t>(best) | sign;
  }
  return out;
}

absl::Status WriteSafetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                              const std::map<std::string, std::string>& metadata,
                              const std::vector<std::string>& e4m3_keys) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [key, tensor] : tensors) {
    MAGI_ASSIGN_OR_RETURN(auto dtype, FromAten(tensor.scalar_type(), key));
    StDtype d = dtype;
    if (std::find(e4m3_keys.begin(), e4m3_keys.end(), key) != e4m3_keys.end()) {
      if (d != StDtype::kU8) {
        return absl::InvalidArgumentError(absl::StrCat("safetensors: e4m3 tensor '", key, "' must be uint8 codes"));
      }
      d = StDtype::kF8E4M3;
    }
    at::Tensor c = tensor.to(at::kCPU).contiguous();
    uint64_t bytes = static_cast<uint64_t>(c.numel()) * StDtypeSize(d);
    header[key] = {{"dtype", StDtypeName(d)}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    blobs.push_back(c);
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(absl::StrCat("cannot write '", tmp, "'"));
    uint64_t n = text.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out.write(len, 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& c : blobs) {
      out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
    }
    out.flush();
    if (!out) return absl::InternalError(absl::StrCat("short write to '", tmp, "'"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename '", tmp, "' to '", path, "': ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace magi
