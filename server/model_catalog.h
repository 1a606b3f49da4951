// ModelCatalog: the models the server accepts requests for, with each model's limits and
// defaults (frames per chunk, maximum size, default steps ...). Requests are validated
// against it at the edge, before any worker sees them.
//
// The catalog starts with the built-in "tiny" model (the embedded default that `magi-server
// --local-workers` serves; jobspec/builtin_models.h) -- and, on a server whose default model is
// "synthetic" (tests, development), the synthetic runner's declaration -- and learns every
// model a worker group registers.
// While groups serve a model, its limits are the most permissive over those groups (a
// request is valid if some connected group can run it) and the built-in entry is not used;
// when the last such group leaves, the built-in entry (if any) applies again.
// Groups that declare the same name must agree on what makes a job's output (chunking,
// geometry multiples, special tokens, guidance, default fps and seed): only the limits
// (max_frames / max_width / max_height / max_steps) may differ and are merged. A group
// whose declaration disagrees is refused (CheckCompatible) -- a 24B and a 4.5B group need
// different names (magi-worker --model_name / serving_config.name).
//
// Thread safety: all methods are safe to call concurrently.
#ifndef MAGI_SERVER_MODEL_CATALOG_H_
#define MAGI_SERVER_MODEL_CATALOG_H_

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "magi/internal/v1/worker_pool.pb.h"

namespace magi {

using ModelInfo = ::magi::internal::v1::ModelInfo;

class ModelCatalog {
 public:
  explicit ModelCatalog(std::string default_model = "tiny");

  // Records that `source` (a worker group's connection key) serves `info`.
  void Register(const std::string& source, const ModelInfo& info);
  // OK, or FailedPrecondition naming the model and the first field in which `info` disagrees
  // with a group already serving that name (limits excepted; see above).
  absl::Status CheckCompatible(const ModelInfo& info) const;
  // Forgets everything `source` registered.
  void Unregister(const std::string& source);
  // The model named `name` (empty = the default model), or nullopt.
  std::optional<ModelInfo> Find(const std::string& name) const;
  std::vector<std::string> Names() const;
  const std::string& default_model() const { return default_model_; }

 private:
  const std::string default_model_;
  mutable std::mutex mu_;
  std::map<std::string, ModelInfo> builtin_;
  std::map<std::string, std::map<std::string, ModelInfo>> registered_;  // name -> source -> info
};

}  // namespace magi

#endif  // MAGI_SERVER_MODEL_CATALOG_H_
