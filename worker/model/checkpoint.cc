#include "worker/model/checkpoint.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace magi {
namespace fs = std::filesystem;

namespace {

absl::StatusOr<std::vector<std::string>> ShardsFromIndex(const std::string& index_path,
                                                         std::map<std::string, std::string>* key_to_shard) {
  std::ifstream in(index_path);
  if (!in) return absl::NotFoundError(absl::StrCat("checkpoint index '", index_path, "' cannot be opened"));
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint index '", index_path, "': malformed JSON: ", e.what()));
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint index '", index_path, "': missing object 'weight_map'"));
  }
  std::vector<std::string> shards;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint index '", index_path, "': weight_map['", it.key(), "'] is not a file name"));
    }
    std::string shard = it.value().get<std::string>();
    if (shard.find('/') != std::string::npos || shard == ".." || shard.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint index '", index_path, "': weight_map['", it.key(),
                                                     "'] = '", shard, "' must be a file name in the same folder"));
    }
    (*key_to_shard)[it.key()] = shard;
    if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
  }
  return shards;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& path) {
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> index, single;
    for (const auto& e : fs::directory_iterator(path, ec)) {
      std::string name = e.path().filename().string();
      if (absl::EndsWith(name, ".safetensors.index.json")) index.push_back(e.path().string());
      else if (absl::EndsWith(name, ".safetensors")) single.push_back(e.path().string());
    }
    const std::string preferred_index = (fs::path(path) / "model.safetensors.index.json").string();
    const std::string preferred_single = (fs::path(path) / "model.safetensors").string();
    if (fs::exists(preferred_index)) file = preferred_index;
    else if (index.size() == 1) file = index[0];
    else if (fs::exists(preferred_single)) file = preferred_single;
    else if (index.empty() && single.size() == 1) file = single[0];
    else {
      return absl::NotFoundError(absl::StrCat("checkpoint folder '", path,
                                              "' holds no model.safetensors.index.json or model.safetensors (found ",
                                              index.size(), " index files and ", single.size(), " safetensors files)"));
    }
  }
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->description_ = file;
  if (absl::EndsWith(file, ".index.json")) {
    std::map<std::string, std::string> key_to_shard;
    MAGI_ASSIGN_OR_RETURN(std::vector<std::string> shards, ShardsFromIndex(file, &key_to_shard));
    const fs::path dir = fs::path(file).parent_path();
    std::map<std::string, size_t> shard_index;
    for (const auto& s : shards) {
      MAGI_ASSIGN_OR_RETURN(auto f, SafetensorsFile::Open((dir / s).string()));
      shard_index[s] = ckpt->files_.size();
      ckpt->files_.push_back(std::move(f));
    }
    for (const auto& [key, shard] : key_to_shard) {
      const SafetensorsFile& f = *ckpt->files_[shard_index[shard]];
      if (!f.Contains(key)) {
        return absl::InvalidArgumentError(absl::StrCat("checkpoint index '", file, "' maps '", key, "' to '", shard,
                                                       "' but that shard has no such tensor"));
      }
      ckpt->key_to_file_[key] = shard_index[shard];
    }
    for (size_t i = 0; i < ckpt->files_.size(); ++i) {
      for (const auto& key : ckpt->files_[i]->Keys()) {
        if (!key_to_shard.count(key)) {
          return absl::InvalidArgumentError(absl::StrCat("checkpoint shard '", ckpt->files_[i]->path(), "' holds '",
                                                         key, "' which the index '", file, "' does not list"));
        }
      }
    }
  } else {
    MAGI_ASSIGN_OR_RETURN(auto f, SafetensorsFile::Open(file));
    for (const auto& key : f->Keys()) ckpt->key_to_file_[key] = 0;
    ckpt->files_.push_back(std::move(f));
  }
  return ckpt;
}

std::vector<std::string> Checkpoint::Keys() const {
  std::vector<std::string> keys;
  for (const auto& [k, _] : key_to_file_) keys.push_back(k);
  return keys;
}

const StTensorInfo* Checkpoint::Find(const std::string& key) const {
  auto it = key_to_file_.find(key);
  return it == key_to_file_.end() ? nullptr : files_[it->second]->Find(key);
}

std::string Checkpoint::FileOf(const std::string& key) const {
  auto it = key_to_file_.find(key);
  return it == key_to_file_.end() ? "" : files_[it->second]->path();
}

absl::StatusOr<at::Tensor> Checkpoint::Take(const std::string& key, const std::vector<int64_t>& shape,
                                            const std::vector<StDtype>& allowed) {
  auto it = key_to_file_.find(key);
  if (it == key_to_file_.end()) {
    return absl::NotFoundError(absl::StrCat("checkpoint '", description_, "': missing key '", key, "'"));
  }
  const SafetensorsFile& f = *files_[it->second];
  const StTensorInfo* info = f.Find(key);
  if (!shape.empty() && info->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint file '", f.path(), "': key '", key, "' has shape [",
                                                   absl::StrJoin(info->shape, ", "), "], expected [",
                                                   absl::StrJoin(shape, ", "), "]"));
  }
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), info->dtype) == allowed.end()) {
    std::vector<std::string> names;
    for (StDtype d : allowed) names.push_back(StDtypeName(d));
    return absl::InvalidArgumentError(absl::StrCat("checkpoint file '", f.path(), "': key '", key, "' has dtype ",
                                                   StDtypeName(info->dtype), ", expected ",
                                                   absl::StrJoin(names, " or ")));
  }
  used_.insert(key);
  return f.Get(key);
}

absl::Status Checkpoint::CheckAllUsed() const {
  std::vector<std::string> unused;
  for (const auto& [k, _] : key_to_file_) {
    if (!used_.count(k)) unused.push_back(k);
  }
  if (unused.empty()) return absl::OkStatus();
  size_t n = unused.size();
  if (unused.size() > 10) unused.resize(10);
  return absl::InvalidArgumentError(absl::StrCat("checkpoint '", description_, "': ", n, " unexpected key(s): '",
                                                 absl::StrJoin(unused, "', '"), "'", n > 10 ? ", ..." : ""));
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files_) {
    for (const auto& k : f->Keys()) {
      const StTensorInfo* i = f->Find(k);
      n += i->end - i->begin;
    }
  }
  return n;
}

}  // namespace magi
