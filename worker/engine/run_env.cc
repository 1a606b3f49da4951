#include "worker/engine/run_env.h"

#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace magi {
namespace {

constexpr char kPrevChunksScale[] = "prev_chunks_scale";
constexpr char kSpecialTokenPath[] = "SPECIAL_TOKEN_PATH";

std::vector<std::string> KnownNames() {
  std::vector<std::string> names;
  for (const auto& f : SpecialTokenFlags::Fields()) names.push_back(f.env);
  names.push_back(kPrevChunksScale);
  names.push_back(kSpecialTokenPath);
  return names;
}

}  // namespace

bool EnvIsTrue(std::string_view value) {
  std::string v(value);
  absl::AsciiStrToLower(&v);
  return v == "1" || v == "true" || v == "yes" || v == "y" || v == "on" || v == "enabled";
}

absl::StatusOr<RunEnv> ParseRunEnv(const std::map<std::string, std::optional<std::string>>& env,
                                   const std::string& source) {
  RunEnv out;
  const std::vector<std::string> known = KnownNames();
  for (const auto& [name, value] : env) {
    if (!value.has_value()) continue;  // unset
    bool matched = false;
    for (const auto& f : SpecialTokenFlags::Fields()) {
      if (name == f.env) {
        out.special_tokens.*f.member = EnvIsTrue(*value);
        matched = true;
      }
    }
    if (matched) continue;
    if (name == kPrevChunksScale) {
      double v = 0;
      // Python float() accepts surrounding whitespace.
      if (!absl::SimpleAtod(absl::StripAsciiWhitespace(absl::string_view(value->data(), value->size())), &v) || !std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": env prev_chunks_scale must be a finite number, got '",
                                                       *value, "'"));
      }
      out.prev_chunks_scale = v;
    } else if (name == kSpecialTokenPath) {
      if (value->empty()) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": env SPECIAL_TOKEN_PATH is set but empty"));
      }
      out.special_token_path = *value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(source, ": env ", name, " = '", *value,
                                                     "' is not a variable this program applies (known: ",
                                                     absl::StrJoin(known, ", "), ")"));
    }
  }
  return out;
}

absl::StatusOr<RunEnv> RunEnvFromProcess() {
  std::map<std::string, std::optional<std::string>> env;
  for (const std::string& name : KnownNames()) {
    const char* v = std::getenv(name.c_str());
    env[name] = v != nullptr ? std::optional<std::string>(v) : std::nullopt;
  }
  return ParseRunEnv(env, "environment");
}

}  // namespace magi
