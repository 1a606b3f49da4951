// The safetensors header: element types, tensor descriptions, and the parser that checks a
// whole file's header against its size. No LibTorch: the fuzz build compiles this file alone
// (fuzz/safetensors_header_fuzzer.cc), and SafetensorsFile (safetensors.h) is its one user.
//
// Format: an 8-byte little-endian header length N, N bytes of JSON ({name: {dtype, shape,
// data_offsets: [begin, end]}, optional "__metadata__"}), then the raw tensor bytes;
// offsets are relative to the end of the header.
//
// Thread safety: pure functions.
#ifndef MAGI_WORKER_MODEL_SAFETENSORS_HEADER_H_
#define MAGI_WORKER_MODEL_SAFETENSORS_HEADER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace magi {

// The element types MAGI-1 checkpoints and our golden files use.
enum class StDtype { kF32, kF16, kBF16, kF8E4M3, kI64, kI32, kBool, kU8 };

// "F32", "BF16", ... as written in headers.
const char* StDtypeName(StDtype dtype);
int64_t StDtypeSize(StDtype dtype);

struct StTensorInfo {
  std::string name;
  StDtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offset into the data section
  uint64_t end = 0;
  int64_t numel() const;
};

// Headers longer than this are refused (the released 24B index has ~1 MB headers).
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

struct SafetensorsHeader {
  uint64_t data_start = 0;                    // 8 + N
  std::vector<StTensorInfo> tensors;          // sorted by name
  std::map<std::string, std::string> metadata;
};

// Parses and checks the header of a file whose `size` bytes are at `data`. Every error is
// InvalidArgument naming `path` (and the tensor): shorter than 8 bytes, a header length past
// the file or over the limit, malformed JSON, a non-object entry, an unknown dtype, a shape
// whose byte size differs from its offsets or overflows, offsets past the data section, two
// tensors whose byte ranges overlap. An accepted header's tensors lie inside the data
// section, pairwise disjoint (empty tensors included as points).
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(const uint8_t* data, uint64_t size, const std::string& path);

}  // namespace magi

#endif  // MAGI_WORKER_MODEL_SAFETENSORS_HEADER_H_
