#include "worker/model/safetensors_header.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace magi {
namespace {

bool ParseDtype(const std::string& s, StDtype* out) {
  static const std::map<std::string, StDtype> kNames = {
      {"F32", StDtype::kF32},   {"F16", StDtype::kF16},         {"BF16", StDtype::kBF16},
      {"F8_E4M3", StDtype::kF8E4M3}, {"I64", StDtype::kI64},    {"I32", StDtype::kI32},
      {"BOOL", StDtype::kBool}, {"U8", StDtype::kU8}};
  auto it = kNames.find(s);
  if (it == kNames.end()) return false;
  *out = it->second;
  return true;
}

}  // namespace

const char* StDtypeName(StDtype d) {
  switch (d) {
    case StDtype::kF32: return "F32";
    case StDtype::kF16: return "F16";
    case StDtype::kBF16: return "BF16";
    case StDtype::kF8E4M3: return "F8_E4M3";
    case StDtype::kI64: return "I64";
    case StDtype::kI32: return "I32";
    case StDtype::kBool: return "BOOL";
    case StDtype::kU8: return "U8";
  }
  return "?";
}

int64_t StDtypeSize(StDtype d) {
  switch (d) {
    case StDtype::kF32: case StDtype::kI32: return 4;
    case StDtype::kF16: case StDtype::kBF16: return 2;
    case StDtype::kI64: return 8;
    case StDtype::kF8E4M3: case StDtype::kBool: case StDtype::kU8: return 1;
  }
  return 1;
}


int64_t StTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(const uint8_t* base, uint64_t size, const std::string& path) {
  auto err = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file '", path, "': ", what));
  };
  if (size < 8) return err(absl::StrCat("file is ", size, " bytes, shorter than the 8-byte header length"));
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(base[i]) << (8 * i);
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return err(absl::StrCat("header length ", header_len, " exceeds the limit of ", kMaxSafetensorsHeaderBytes,
                            " bytes"));
  }
  if (header_len > size - 8) {
    return err(absl::StrCat("header length ", header_len, " runs past the end of the file (", size,
                            " bytes): truncated or not a safetensors file"));
  }
  SafetensorsHeader out;
  out.data_start = 8 + header_len;
  const uint64_t data_size = size - out.data_start;
  nlohmann::json header = nlohmann::json::parse(reinterpret_cast<const char*>(base + 8),
                                                reinterpret_cast<const char*>(base + 8 + header_len), nullptr,
                                                /*allow_exceptions=*/false);
  if (header.is_discarded()) return err("malformed JSON header");
  if (!header.is_object()) return err("header is not a JSON object");
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& v = it.value();
    if (key == "__metadata__") {
      if (!v.is_object()) return err("__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) return err(absl::StrCat("__metadata__ value '", m.key(), "' is not a string"));
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto kerr = [&](const std::string& what) { return err(absl::StrCat("tensor '", key, "': ", what)); };
    if (!v.is_object()) return kerr("entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) return kerr("missing string field 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array()) return kerr("missing array field 'shape'");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      return kerr("missing field 'data_offsets' [begin, end]");
    StTensorInfo info;
    info.name = key;
    if (!ParseDtype(v["dtype"].get<std::string>(), &info.dtype)) {
      return kerr(absl::StrCat("unsupported dtype '", v["dtype"].get<std::string>(),
                               "' (allowed: F32, F16, BF16, F8_E4M3, I64, I32, BOOL, U8)"));
    }
    unsigned __int128 bytes = StDtypeSize(info.dtype);
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) return kerr("shape entries must be non-negative integers");
      uint64_t dim = d.get<uint64_t>();
      if (dim > (1ull << 40)) return kerr(absl::StrCat("dimension ", dim, " is absurdly large"));
      info.shape.push_back(static_cast<int64_t>(dim));
      bytes *= dim;
      if (bytes > (static_cast<unsigned __int128>(1) << 62)) return kerr("shape overflows the byte size");
    }
    for (const auto& o : v["data_offsets"]) {
      if (!o.is_number_unsigned()) return kerr("data_offsets must be non-negative integers");
    }
    info.begin = v["data_offsets"][0].get<uint64_t>();
    info.end = v["data_offsets"][1].get<uint64_t>();
    if (info.end < info.begin) return kerr("data_offsets end before begin");
    if (info.end > data_size) {
      return kerr(absl::StrCat("data_offsets [", info.begin, ", ", info.end, ") run past the data section (",
                               data_size, " bytes): file truncated"));
    }
    if (static_cast<unsigned __int128>(info.end - info.begin) != bytes) {
      return kerr(absl::StrCat("data_offsets span ", info.end - info.begin, " bytes but ", StDtypeName(info.dtype),
                               " shape needs ", static_cast<uint64_t>(bytes)));
    }
    out.tensors.push_back(std::move(info));
  }
  // Overlap: sorted by begin, each non-empty range must start at or after the furthest end
  // of the ranges before it (not only its neighbour's: a long range can cover several).
  std::vector<const StTensorInfo*> by_offset;
  for (const auto& t : out.tensors) {
    if (t.end > t.begin) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const StTensorInfo* a, const StTensorInfo* b) { return a->begin < b->begin; });
  const StTensorInfo* furthest = nullptr;
  for (const StTensorInfo* t : by_offset) {
    if (furthest != nullptr && t->begin < furthest->end) {
      return err(absl::StrCat("tensors '", furthest->name, "' and '", t->name, "' overlap"));
    }
    if (furthest == nullptr || t->end > furthest->end) furthest = t;
  }
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const StTensorInfo& a, const StTensorInfo& b) { return a.name < b.name; });
  return out;
}

}  // namespace magi
