#include "server/model_catalog.h"

#include <algorithm>
#include <iterator>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "jobspec/builtin_models.h"

namespace magi {

ModelCatalog::ModelCatalog(std::string default_model) : default_model_(std::move(default_model)) {
  builtin_[kTinyModelName] = TinyModelInfo();
  if (default_model_ == kSyntheticModelName) builtin_[kSyntheticModelName] = SyntheticModelInfo();
}

void ModelCatalog::Register(const std::string& source, const ModelInfo& info) {
  std::lock_guard<std::mutex> lock(mu_);
  registered_[info.name()][source] = info;
}

absl::Status ModelCatalog::CheckCompatible(const ModelInfo& info) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto reg = registered_.find(info.name());
  if (reg == registered_.end() || reg->second.empty()) return absl::OkStatus();
  // Named references, not a structured binding: C++17 lambdas cannot capture those (clang
  // refuses; the fuzz build compiles this file with clang).
  const std::string& source = reg->second.begin()->first;
  const ModelInfo& have = reg->second.begin()->second;
  auto differ = [&](const char* field, const std::string& theirs, const std::string& mine) -> absl::Status {
    if (theirs == mine) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "model '", info.name(), "': ", field, " ", mine, " disagrees with ", theirs, " declared by group ", source,
        " serving the same name; give different models different names (magi-worker --model_name or "
        "config.json serving_config.name)"));
  };
  const std::pair<const char*, int64_t (*)(const ModelInfo&)> ints[] = {
      {"frames_per_chunk", [](const ModelInfo& m) -> int64_t { return m.frames_per_chunk(); }},
      {"latent_frames_per_chunk", [](const ModelInfo& m) -> int64_t { return m.latent_frames_per_chunk(); }},
      {"frames_multiple", [](const ModelInfo& m) -> int64_t { return m.frames_multiple(); }},
      {"steps_multiple", [](const ModelInfo& m) -> int64_t { return m.steps_multiple(); }},
      {"size_multiple", [](const ModelInfo& m) -> int64_t { return m.size_multiple(); }},
      {"min_size", [](const ModelInfo& m) -> int64_t { return m.min_size(); }},
      {"default_fps", [](const ModelInfo& m) -> int64_t { return m.default_fps(); }},
      {"default_seed", [](const ModelInfo& m) -> int64_t { return m.default_seed(); }},
  };
  for (const auto& [field, get] : ints) {
    MAGI_RETURN_IF_ERROR(differ(field, absl::StrCat(get(have)), absl::StrCat(get(info))));
  }
  auto list = [](const auto& xs) { return absl::StrCat("[", absl::StrJoin(xs, ", "), "]"); };
  MAGI_RETURN_IF_ERROR(differ("special_tokens", list(have.special_tokens()), list(info.special_tokens())));
  return differ("cfg_numbers", list(have.cfg_numbers()), list(info.cfg_numbers()));
}

void ModelCatalog::Unregister(const std::string& source) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = registered_.begin(); it != registered_.end();) {
    it->second.erase(source);
    it = it->second.empty() ? registered_.erase(it) : std::next(it);
  }
}

std::optional<ModelInfo> ModelCatalog::Find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string& key = name.empty() ? default_model_ : name;
  auto reg = registered_.find(key);
  if (reg != registered_.end()) {
    std::optional<ModelInfo> merged;
    for (const auto& [source, info] : reg->second) {
      if (!merged) {
        merged = info;
        continue;
      }
      merged->set_max_frames(std::max(merged->max_frames(), info.max_frames()));
      merged->set_max_width(std::max(merged->max_width(), info.max_width()));
      merged->set_max_height(std::max(merged->max_height(), info.max_height()));
      merged->set_max_steps(std::max(merged->max_steps(), info.max_steps()));
    }
    return merged;
  }
  auto it = builtin_.find(key);
  if (it == builtin_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> ModelCatalog::Names() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::set<std::string> names;
  for (const auto& [name, info] : builtin_) names.insert(name);
  for (const auto& [name, sources] : registered_) names.insert(name);
  return std::vector<std::string>(names.begin(), names.end());
}

}  // namespace magi
