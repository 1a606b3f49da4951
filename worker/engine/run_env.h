// The reference's run-script environment (spec pipeline.md §8.5) as values: which special
// tokens are enabled (PAD_* / NEG_PROMPT), the nearly-clean blend weight prev_chunks_scale,
// and SPECIAL_TOKEN_PATH. One parser, with the reference's rules:
//  - a flag is true iff its value, lower-cased, is one of "1", "true", "yes", "y", "on",
//    "enabled" (inference/common/common_utils.py env_is_true); every other value, and an
//    unset variable, is false;
//  - prev_chunks_scale is Python float() of the value (dit_model.py), default 0.7; here a
//    value that is not a finite number is an error instead of a crash mid-run.
// Used by the golden checker (each AR case's recorded env) and by `magi generate` (the
// process environment). The served path takes the same settings from config.json's
// serving_config instead (worker/model/config.h).
#ifndef MAGI_WORKER_ENGINE_RUN_ENV_H_
#define MAGI_WORKER_ENGINE_RUN_ENV_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "worker/model/special_token_flags.h"

namespace magi {

struct RunEnv {
  SpecialTokenFlags special_tokens;   // all off unless set true
  double prev_chunks_scale = 0.7;
  std::string special_token_path;     // SPECIAL_TOKEN_PATH; "" = unset
};

// The reference's env_is_true on a set variable's value.
bool EnvIsTrue(std::string_view value);

// `env` maps variable names to values; nullopt = unset. Known names: the PAD_* and
// NEG_PROMPT flags, prev_chunks_scale, SPECIAL_TOKEN_PATH. A known name set to an
// unparsable value, or an unknown name that is set, is InvalidArgument naming `source`, the
// variable and what is allowed (an unset unknown name is ignored).
absl::StatusOr<RunEnv> ParseRunEnv(const std::map<std::string, std::optional<std::string>>& env,
                                   const std::string& source);

// ParseRunEnv over this process's environment (only the known names are read).
absl::StatusOr<RunEnv> RunEnvFromProcess();

}  // namespace magi

#endif  // MAGI_WORKER_ENGINE_RUN_ENV_H_
