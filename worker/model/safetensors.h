// Reading and writing the safetensors checkpoint format.
//
// A safetensors file is: an 8-byte little-endian header length N, N bytes of JSON
// ({name: {dtype, shape, data_offsets: [begin, end]}, optional "__metadata__"}), then the
// raw little-endian tensor bytes; offsets are relative to the end of the header.
//
// SafetensorsFile maps the file read-only (copy-on-write) and hands out CPU tensors that
// alias the mapping, so a loaded checkpoint never exists twice in memory. Every header is
// validated against the file size before any tensor is exposed: overlapping, out-of-range
// or misdescribed tensors are errors naming the file and the key, never a crash.
//
// Thread safety: a SafetensorsFile is immutable after Open() and safe to read from several
// threads. Tensors returned by Get() keep the mapping alive after the file object is gone.
#ifndef MAGI_WORKER_MODEL_SAFETENSORS_H_
#define MAGI_WORKER_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/model/safetensors_header.h"

namespace magi {

class SafetensorsFile {
 public:
  // Maps and validates `path`. Fails with a message naming the file on: a missing or
  // unreadable file, a header longer than the file or than 100 MB, malformed JSON, an
  // unknown dtype, a shape whose byte size differs from its offsets, offsets past the end
  // of the file, or two tensors overlapping.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // Tensor names in header order (sorted, as the format stores them).
  std::vector<std::string> Keys() const;
  bool Contains(const std::string& name) const { return index_.count(name) > 0; }
  // nullptr when absent.
  const StTensorInfo* Find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t file_size() const { return size_; }

  // A CPU tensor viewing the mapped bytes (no copy) for F32/F16/BF16/I64/I32/BOOL/U8.
  // F8_E4M3 has no ATen type in LibTorch 1.13: it comes back as a uint8 view of the raw
  // codes; DecodeE4M3() turns those into floats. The tensor keeps the mapping alive.
  // Writes to it are private (copy-on-write) and never reach the file.
  absl::StatusOr<at::Tensor> Get(const std::string& name) const;

 private:
  struct Mapping;
  SafetensorsFile() = default;

  std::string path_;
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;
  std::shared_ptr<Mapping> mapping_;
  std::vector<StTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Decodes float8 e4m3fn codes (uint8 tensor) to float32 by table: sign, 4-bit exponent with
// bias 7, 3-bit mantissa, no infinities, 0x7f/0xff are NaN, max finite 448.
at::Tensor DecodeE4M3(const at::Tensor& codes);
// Rounds float32 values to the nearest e4m3fn code (round-to-nearest-even, saturating to
// +-448, NaN to 0x7f). Used to write fp8 test checkpoints and to emulate fp8 activations.
at::Tensor EncodeE4M3(const at::Tensor& values);

// Writes tensors (any supported dtype; contiguous copies are made as needed) to `path`
// in key-sorted order with an 8-byte aligned header, atomically (temp file + rename).
// `e4m3_keys` names uint8 tensors to be stored as F8_E4M3 codes.
absl::Status WriteSafetensors(const std::string& path,
                              const std::map<std::string, at::Tensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {},
                              const std::vector<std::string>& e4m3_keys = {});

}  // namespace magi

#endif  // MAGI_WORKER_MODEL_SAFETENSORS_H_
