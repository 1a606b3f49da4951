// Which of MAGI-1's special caption tokens are enabled (spec pipeline.md §4.4-4.5, §8.5).
// The reference reads them from the run-script environment (PAD_* / NEG_PROMPT); here they
// are one explicit struct, owned by this header and used everywhere a run decides them:
// the model folder's config.json (serving_config, worker/model/config.h), the golden
// checker's recorded env (worker/engine/run_env.h), and the conversion into the engine's
// PromptTokens (worker/engine/chunk_captions.h SelectPromptTokens).
//
// Torch-free on purpose: config.h includes it.
#ifndef MAGI_WORKER_MODEL_SPECIAL_TOKEN_FLAGS_H_
#define MAGI_WORKER_MODEL_SPECIAL_TOKEN_FLAGS_H_

#include <string>
#include <vector>

namespace magi {

struct SpecialTokenFlags {
  // Conditional rows, in the reference's application order (get_special_token_keys).
  bool pad_static = false;         // PAD_STATIC: STATIC_FIRST_FRAMES (other_tokens row 2)
  bool pad_dynamic = false;        // PAD_DYNAMIC: DYNAMIC_FIRST_FRAMES (row 3)
  bool pad_borderness = false;     // PAD_BORDERNESS: BORDERNESS (row 4)
  bool pad_hq = false;             // PAD_HQ: HQ (row 1)
  bool pad_three_d_model = false;  // PAD_THREE_D_MODEL: THREE_D_MODEL (row 15)
  bool pad_two_d_anime = false;    // PAD_TWO_D_ANIME: TWO_D_ANIME (row 16)
  bool pad_duration = false;       // PAD_DURATION: per-chunk DURATION_k (rows 7..14), applied last
  // Null rows: CAPTION, LOGO, TRANS, BORDERNESS prepended (mask unchanged).
  bool neg_prompt = false;         // NEG_PROMPT

  // What the reference's run scripts and ComfyUI nodes set: PAD_HQ=1 PAD_DURATION=1.
  static SpecialTokenFlags RunScriptDefaults() {
    SpecialTokenFlags f;
    f.pad_hq = true;
    f.pad_duration = true;
    return f;
  }

  // One entry per flag, in the order above: the reference's environment variable name
  // (config.json's serving_config uses it lower-cased) and the member.
  struct Field {
    const char* env;
    bool SpecialTokenFlags::*member;
  };
  static const std::vector<Field>& Fields() {
    static const std::vector<Field> kFields = {
        {"PAD_STATIC", &SpecialTokenFlags::pad_static},
        {"PAD_DYNAMIC", &SpecialTokenFlags::pad_dynamic},
        {"PAD_BORDERNESS", &SpecialTokenFlags::pad_borderness},
        {"PAD_HQ", &SpecialTokenFlags::pad_hq},
        {"PAD_THREE_D_MODEL", &SpecialTokenFlags::pad_three_d_model},
        {"PAD_TWO_D_ANIME", &SpecialTokenFlags::pad_two_d_anime},
        {"PAD_DURATION", &SpecialTokenFlags::pad_duration},
        {"NEG_PROMPT", &SpecialTokenFlags::neg_prompt},
    };
    return kFields;
  }

  // The enabled flags' environment names, in the order above.
  std::vector<std::string> EnabledNames() const {
    std::vector<std::string> out;
    for (const Field& f : Fields()) {
      if (this->*f.member) out.push_back(f.env);
    }
    return out;
  }
  bool any() const { return !EnabledNames().empty(); }
  bool operator==(const SpecialTokenFlags& o) const { return EnabledNames() == o.EnabledNames(); }
  bool operator!=(const SpecialTokenFlags& o) const { return !(*this == o); }
};

}  // namespace magi

#endif  // MAGI_WORKER_MODEL_SPECIAL_TOKEN_FLAGS_H_
