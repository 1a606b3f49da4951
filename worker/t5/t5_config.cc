#include "worker/t5/t5_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace magi {
namespace {

using nlohmann::json;

class FieldReader {
 public:
  FieldReader(const json& obj, const std::string& source) : obj_(obj), source_(source) {}

  // `required` = false keeps *out (the HF default) when the field is absent or null.
  absl::Status Int(const char* name, int64_t* out, int64_t lo, int64_t hi, bool required) {
    auto it = obj_.find(name);
    if (it == obj_.end() || it->is_null()) {
      if (required) return Err(name, absl::StrCat("is missing (an integer in [", lo, ", ", hi, "])"));
      return absl::OkStatus();
    }
    bool integral = it->is_number_integer() ||
                    (it->is_number_float() && std::floor(it->get<double>()) == it->get<double>());
    if (!integral) return Err(name, absl::StrCat("must be an integer in [", lo, ", ", hi, "], got ", it->dump()));
    int64_t v = it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(it->get<double>());
    if (v < lo || v > hi) return Err(name, absl::StrCat("must be in [", lo, ", ", hi, "], got ", v));
    *out = v;
    return absl::OkStatus();
  }
  absl::Status Double(const char* name, double* out, double lo, double hi) {
    auto it = obj_.find(name);
    if (it == obj_.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_number()) return Err(name, absl::StrCat("must be a number in [", lo, ", ", hi, "], got ", it->dump()));
    double v = it->get<double>();
    if (!(v >= lo && v <= hi)) return Err(name, absl::StrCat("must be in [", lo, ", ", hi, "], got ", v));
    *out = v;
    return absl::OkStatus();
  }
  // Returns "" when absent.
  absl::StatusOr<std::string> String(const char* name) {
    auto it = obj_.find(name);
    if (it == obj_.end() || it->is_null()) return std::string();
    if (!it->is_string()) return Err(name, absl::StrCat("must be a string, got ", it->dump()));
    return it->get<std::string>();
  }
  absl::Status Err(const char* name, const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat("T5 config '", source_, "': field '", name, "' ", what));
  }

 private:
  const json& obj_;
  const std::string& source_;
};

}  // namespace

absl::StatusOr<T5Config> ParseT5Config(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("T5 config '", source, "': malformed JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat("T5 config '", source, "': not a JSON object"));
  FieldReader r(j, source);
  T5Config c;
  constexpr int64_t kBig = int64_t{1} << 20;
  MAGI_RETURN_IF_ERROR(r.Int("vocab_size", &c.vocab_size, 1, int64_t{1} << 24, true));
  MAGI_RETURN_IF_ERROR(r.Int("d_model", &c.d_model, 1, kBig, true));
  MAGI_RETURN_IF_ERROR(r.Int("d_kv", &c.d_kv, 1, kBig, true));
  MAGI_RETURN_IF_ERROR(r.Int("d_ff", &c.d_ff, 1, kBig, true));
  MAGI_RETURN_IF_ERROR(r.Int("num_layers", &c.num_layers, 1, 1024, true));
  MAGI_RETURN_IF_ERROR(r.Int("num_heads", &c.num_heads, 1, 4096, true));
  if (auto s = r.Int("relative_attention_num_buckets", &c.relative_attention_num_buckets, 4, 4096, false); !s.ok())
    return s;
  if (c.relative_attention_num_buckets % 4 != 0) {
    // Bidirectional buckets: half per direction, half of those exact.
    return r.Err("relative_attention_num_buckets",
                 absl::StrCat("must be a multiple of 4, got ", c.relative_attention_num_buckets));
  }
  const int64_t max_exact = c.relative_attention_num_buckets / 4;
  if (auto s = r.Int("relative_attention_max_distance", &c.relative_attention_max_distance, max_exact + 1,
                     int64_t{1} << 30, false);
      !s.ok())
    return s;
  MAGI_RETURN_IF_ERROR(r.Double("layer_norm_epsilon", &c.layer_norm_epsilon, 0.0, 1.0));
  MAGI_RETURN_IF_ERROR(r.Int("pad_token_id", &c.pad_token_id, 0, c.vocab_size - 1, false));
  MAGI_RETURN_IF_ERROR(r.Int("eos_token_id", &c.eos_token_id, 0, c.vocab_size - 1, false));

  MAGI_ASSIGN_OR_RETURN(auto model_type, r.String("model_type"));
  if (!model_type.empty() && model_type != "t5") {
    return r.Err("model_type", absl::StrCat("must be \"t5\", got \"", model_type, "\""));
  }
  // HF's T5Config defaults feed_forward_proj to "relu" (T5 v1.0), which this encoder does not
  // implement, so the field must be present and name the v1.1 gated GELU.
  MAGI_ASSIGN_OR_RETURN(auto ffp, r.String("feed_forward_proj"));
  if (ffp != "gated-gelu") {
    return r.Err("feed_forward_proj",
                 absl::StrCat("must be \"gated-gelu\" (T5 v1.1), got ", ffp.empty() ? "nothing" : "\"" + ffp + "\""));
  }
  auto it = j.find("is_gated_act");
  if (it != j.end() && !it->is_null() && !(it->is_boolean() && it->get<bool>())) {
    return r.Err("is_gated_act", absl::StrCat("must be true for \"gated-gelu\", got ", it->dump()));
  }
  return c;
}

absl::StatusOr<T5Config> LoadT5Config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("T5 config '", path, "' cannot be opened"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseT5Config(ss.str(), path);
}

}  // namespace magi
