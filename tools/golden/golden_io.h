// Reading a golden folder: its JSON files and the model it describes.
#ifndef MAGI_TOOLS_GOLDEN_GOLDEN_IO_H_
#define MAGI_TOOLS_GOLDEN_GOLDEN_IO_H_

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "tools/golden/golden_report.h"
#include "worker/model/config.h"
#include "worker/model/dit.h"

namespace magi {

// Parses `dir`/`name` as JSON.
absl::StatusOr<nlohmann::json> ReadGoldenJson(const std::string& dir, const std::string& name);

// The MagiConfig stored under "config" of a golden json object.
absl::StatusOr<MagiConfig> GoldenConfig(const nlohmann::json& section, const std::string& source);

// Loads the folder's weights.safetensors into a DiT for `config` (fp32 on CPU), sharded
// by the context's layout.
absl::StatusOr<std::unique_ptr<DitModel>> LoadGoldenDit(const GoldenContext& ctx, const ModelConfig& config,
                                                         bool distill);

}  // namespace magi

#endif  // MAGI_TOOLS_GOLDEN_GOLDEN_IO_H_
