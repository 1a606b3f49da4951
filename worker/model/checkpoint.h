// A checkpoint: one safetensors file, or shards listed by `*.safetensors.index.json`.
//
// Strict by default: the model asks for every key it needs through Take(), which checks
// shape and dtype, and Finish() reports keys the model never asked for. All errors name the
// file and the key. Tensors alias the mapped files (see SafetensorsFile), so loading keeps
// one copy of the weights in memory.
#ifndef MAGI_WORKER_MODEL_CHECKPOINT_H_
#define MAGI_WORKER_MODEL_CHECKPOINT_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "worker/model/safetensors.h"

namespace magi {

class Checkpoint {
 public:
  // `path` is a .safetensors file, a .safetensors.index.json file, or a folder holding
  // either `model.safetensors.index.json` or `model.safetensors` (or exactly one
  // *.safetensors.index.json / *.safetensors file).
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& path);

  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  bool Contains(const std::string& key) const { return key_to_file_.count(key) > 0; }
  std::vector<std::string> Keys() const;
  // Header info of `key`, or nullptr.
  const StTensorInfo* Find(const std::string& key) const;
  // Which file holds `key` ("" if none).
  std::string FileOf(const std::string& key) const;

  // Returns the tensor and marks the key as used. `shape` (if non-empty) must match exactly.
  // `allowed` lists acceptable dtypes (empty = any). Errors name the file and the key.
  absl::StatusOr<at::Tensor> Take(const std::string& key, const std::vector<int64_t>& shape = {},
                                  const std::vector<StDtype>& allowed = {});
  // Marks a key as used without reading it (e.g. a tied weight stored twice).
  void MarkUsed(const std::string& key) { used_.insert(key); }
  // Error listing (up to 10) keys never taken, when strict.
  absl::Status CheckAllUsed() const;

  const std::string& description() const { return description_; }
  // Sum of tensor bytes over all files.
  uint64_t total_bytes() const;

 private:
  Checkpoint() = default;
  std::string description_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> key_to_file_;
  std::set<std::string> used_;
};

}  // namespace magi

#endif  // MAGI_WORKER_MODEL_CHECKPOINT_H_
