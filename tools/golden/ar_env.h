// The run-script environment an AR golden case recorded ("env" in its golden*.json
// section: PAD_*, NEG_PROMPT, prev_chunks_scale, SPECIAL_TOKEN_PATH; null = unset), turned
// into what the engine runs with. Parsing is worker/engine/run_env.h (the reference's
// rules); the tokens come from the golden folder's special-token file. Implemented in
// ar_cases.cc (compiled into magi-golden and the ar golden test).
#ifndef MAGI_TOOLS_GOLDEN_AR_ENV_H_
#define MAGI_TOOLS_GOLDEN_AR_ENV_H_

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/engine/chunk_captions.h"
#include "worker/engine/run_env.h"

namespace magi {

struct ArCaseEnv {
  RunEnv env;
  PromptTokens tokens;     // the enabled special tokens (empty when none)
  std::string token_file;  // the special-token file used ("" when none was needed)
};

// `env` is the case's recorded object (absent / null = nothing set). Values may be strings
// (what os.environ holds), booleans or numbers (read as Python's str() of them) or null.
// The token file: SPECIAL_TOKEN_PATH as recorded if that file exists, else the file of that
// basename in `dir`; without SPECIAL_TOKEN_PATH, `dir`/special_tokens.npz. Errors (never a
// silent pass): a token enabled but no file, tokens not `caption_channels` wide, an unknown
// variable set, an unparsable value; each names `where`, the variable and the folder.
absl::StatusOr<ArCaseEnv> ApplyArCaseEnv(const nlohmann::json& env, const std::string& dir, int64_t caption_channels,
                                         const std::string& where);

}  // namespace magi

#endif  // MAGI_TOOLS_GOLDEN_AR_ENV_H_
