#include "tools/golden/golden_io.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/model/checkpoint.h"

namespace magi {

absl::StatusOr<nlohmann::json> ReadGoldenJson(const std::string& dir, const std::string& name) {
  const std::string path = (std::filesystem::path(dir) / name).string();
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("golden file '", path, "' cannot be opened"));
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("golden file '", path, "': malformed JSON: ", e.what()));
  }
}

absl::StatusOr<MagiConfig> GoldenConfig(const nlohmann::json& section, const std::string& source) {
  if (!section.contains("config")) return absl::NotFoundError(absl::StrCat(source, ": no 'config' object"));
  return ParseMagiConfig(section["config"].dump(), source);
}

absl::StatusOr<std::unique_ptr<DitModel>> LoadGoldenDit(const GoldenContext& ctx, const ModelConfig& config,
                                                         bool distill) {
  MAGI_ASSIGN_OR_RETURN(auto ckpt, Checkpoint::Open((std::filesystem::path(ctx.dir) / "weights.safetensors").string()));
  DitModel::Options opts;
  opts.distill = distill;
  opts.device = ctx.device;
  opts.layout = ctx.layout;
  opts.tp_comm = ctx.tp_comm;
  opts.cp_comm = ctx.cp_comm;
  return DitModel::Load(config, *ckpt, opts);
}

}  // namespace magi
