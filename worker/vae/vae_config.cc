#include "worker/vae/vae_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace magi {
namespace {

using nlohmann::json;

absl::Status FieldError(const std::string& source, const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ddconfig.", field, " ", what));
}

absl::Status ReadInt(const json& obj, const std::string& source, const char* name, int64_t lo, int64_t hi,
                     int64_t* out) {
  if (!obj.contains(name)) return absl::OkStatus();
  const json& v = obj[name];
  const bool integral =
      v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
  if (!integral)
    return FieldError(source, name, absl::StrCat("must be an integer in [", lo, ", ", hi, "], got ", v.dump()));
  const int64_t x = v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
  if (x < lo || x > hi) return FieldError(source, name, absl::StrCat("must be in [", lo, ", ", hi, "], got ", x));
  *out = x;
  return absl::OkStatus();
}

absl::Status ReadBool(const json& obj, const std::string& source, const char* name, bool* out) {
  if (!obj.contains(name)) return absl::OkStatus();
  const json& v = obj[name];
  if (!v.is_boolean()) return FieldError(source, name, absl::StrCat("must be true or false, got ", v.dump()));
  *out = v.get<bool>();
  return absl::OkStatus();
}

absl::StatusOr<VaeConfig> FromJson(const json& obj, const std::string& source) {
  if (!obj.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": ddconfig must be a JSON object"));
  // Every keyword the reference's ViTEncoder/ViTDecoder constructors accept. Dropout rates and
  // qk_scale have no effect at inference (the reference ignores qk_scale entirely).
  static const std::set<std::string> kKnown = {
      "video_size", "video_length",    "patch_size",     "patch_length",   "in_chans",       "z_chans",
      "double_z",   "embed_dim",       "depth",          "num_heads",      "mlp_ratio",      "qkv_bias",
      "qk_scale",   "drop_rate",       "attn_drop_rate", "drop_path_rate", "with_cls_token", "norm_code",
      "ln_in_attn", "conv_last_layer", "use_rope",       "use_final_proj"};
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!kKnown.count(it.key())) {
      return FieldError(source, it.key(), "is not a ViTEncoder/ViTDecoder argument");
    }
  }
  VaeConfig c;
  constexpr int64_t kBig = 1 << 20;
  absl::Status s;
  if (!(s = ReadInt(obj, source, "video_size", 1, kBig, &c.video_size)).ok()) return s;
  if (!(s = ReadInt(obj, source, "video_length", 1, kBig, &c.video_length)).ok()) return s;
  if (!(s = ReadInt(obj, source, "patch_size", 1, 1024, &c.patch_size)).ok()) return s;
  if (!(s = ReadInt(obj, source, "patch_length", 1, 1024, &c.patch_length)).ok()) return s;
  if (!(s = ReadInt(obj, source, "in_chans", 1, 1024, &c.in_chans)).ok()) return s;
  if (!(s = ReadInt(obj, source, "z_chans", 1, 4096, &c.z_chans)).ok()) return s;
  if (!(s = ReadBool(obj, source, "double_z", &c.double_z)).ok()) return s;
  if (!(s = ReadInt(obj, source, "embed_dim", 1, 65536, &c.embed_dim)).ok()) return s;
  if (!(s = ReadInt(obj, source, "depth", 0, 1024, &c.depth)).ok()) return s;
  if (!(s = ReadInt(obj, source, "num_heads", 1, 4096, &c.num_heads)).ok()) return s;
  if (obj.contains("mlp_ratio")) {
    const json& v = obj["mlp_ratio"];
    if (!v.is_number() || !(v.get<double>() > 0 && v.get<double>() <= 64)) {
      return FieldError(source, "mlp_ratio", absl::StrCat("must be a number in (0, 64], got ", v.dump()));
    }
    c.mlp_ratio = v.get<double>();
  }
  if (!(s = ReadBool(obj, source, "qkv_bias", &c.qkv_bias)).ok()) return s;
  if (!(s = ReadBool(obj, source, "with_cls_token", &c.with_cls_token)).ok()) return s;
  if (!(s = ReadBool(obj, source, "norm_code", &c.norm_code)).ok()) return s;
  if (!(s = ReadBool(obj, source, "ln_in_attn", &c.ln_in_attn)).ok()) return s;
  if (!(s = ReadBool(obj, source, "conv_last_layer", &c.conv_last_layer)).ok()) return s;
  if (!(s = ReadBool(obj, source, "use_rope", &c.use_rope)).ok()) return s;
  if (!(s = ReadBool(obj, source, "use_final_proj", &c.use_final_proj)).ok()) return s;
  for (const char* rate : {"drop_rate", "attn_drop_rate", "drop_path_rate"}) {
    if (obj.contains(rate) && !obj[rate].is_number()) {
      return FieldError(source, rate, absl::StrCat("must be a number, got ", obj[rate].dump()));
    }
  }

  MAGI_RETURN_IF_ERROR(ValidateVaeConfig(c, source));
  return c;
}

}  // namespace

absl::Status ValidateVaeConfig(const VaeConfig& c, const std::string& source) {
  auto positive = [&](const char* field, int64_t v) -> absl::Status {
    if (v < 1) return FieldError(source, field, absl::StrCat("must be >= 1, got ", v));
    return absl::OkStatus();
  };
  for (auto [field, v] : {std::pair<const char*, int64_t>{"video_size", c.video_size},
                          {"video_length", c.video_length},
                          {"patch_size", c.patch_size},
                          {"patch_length", c.patch_length},
                          {"in_chans", c.in_chans},
                          {"z_chans", c.z_chans},
                          {"embed_dim", c.embed_dim},
                          {"num_heads", c.num_heads}}) {
    MAGI_RETURN_IF_ERROR(positive(field, v));
  }
  if (c.depth < 0) return FieldError(source, "depth", absl::StrCat("must be >= 0, got ", c.depth));
  // Combinations the reference's modules can build and this port implements.
  if (c.video_size % c.patch_size != 0) {
    return FieldError(source, "video_size",
                      absl::StrCat("must be a multiple of patch_size ", c.patch_size, ", got ", c.video_size));
  }
  if (c.video_length % c.patch_length != 0) {
    return FieldError(source, "video_length",
                      absl::StrCat("must be a multiple of patch_length ", c.patch_length, ", got ", c.video_length));
  }
  if (c.embed_dim % c.num_heads != 0) {
    return FieldError(source, "num_heads", absl::StrCat("must divide embed_dim ", c.embed_dim, ", got ", c.num_heads));
  }
  const int64_t patch_volume = c.patch_size * c.patch_size * c.patch_length;
  if (c.embed_dim % patch_volume != 0) {
    return FieldError(
        source, "embed_dim",
        absl::StrCat("must be a multiple of patch_size^2 * patch_length = ", patch_volume,
                     " (the decoder unpatchifies to embed_dim / ", patch_volume, " channels), got ", c.embed_dim));
  }
  if (c.mlp_hidden() < 1) return FieldError(source, "mlp_ratio", "gives an MLP hidden width below 1");
  if (!c.conv_last_layer) {
    return FieldError(source, "conv_last_layer", "must be true (the reference decoder asserts it)");
  }
  if (!c.double_z) {
    return FieldError(source, "double_z", "must be true (the released VAE's posterior; false is not supported)");
  }
  if (!c.with_cls_token) {
    return FieldError(source, "with_cls_token",
                      "must be true (the reference's pos_embed resize assumes a cls slot; false is not supported)");
  }
  if (c.use_rope) return FieldError(source, "use_rope", "must be false (rotary VAE attention is not supported)");
  if (c.use_final_proj) return FieldError(source, "use_final_proj", "must be false (not supported)");
  return absl::OkStatus();
}

absl::StatusOr<VaeConfig> ParseVaeDdconfig(const std::string& json_text, const std::string& source) {
  json obj = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (obj.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(source, ": ddconfig is not valid JSON"));
  return FromJson(obj, source);
}

absl::StatusOr<VaeConfig> LoadVaeConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read VAE config '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  json obj = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (obj.is_discarded() || !obj.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  if (!obj.contains("_class_name") || !obj["_class_name"].is_string() || obj["_class_name"] != "ViTVAE") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": _class_name must be \"ViTVAE\", got ",
                     obj.contains("_class_name") ? obj["_class_name"].dump() : "nothing"));
  }
  if (obj.contains("model_type") && obj["model_type"] != "vit") {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": model_type must be \"vit\" (\"vit_ncthw\" is not supported), got ", obj["model_type"].dump()));
  }
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (it.key().empty() || it.key()[0] == '_' || it.key() == "model_type" || it.key() == "ddconfig") continue;
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": unknown key '", it.key(), "' (allowed: _class_name, model_type, ddconfig)"));
  }
  if (!obj.contains("ddconfig")) return absl::InvalidArgumentError(absl::StrCat(path, ": missing ddconfig"));
  return FromJson(obj["ddconfig"], path);
}

std::string VaeDdconfigJson(const VaeConfig& c) {
  json obj = {{"video_size", c.video_size},
              {"video_length", c.video_length},
              {"patch_size", c.patch_size},
              {"patch_length", c.patch_length},
              {"in_chans", c.in_chans},
              {"z_chans", c.z_chans},
              {"double_z", c.double_z},
              {"embed_dim", c.embed_dim},
              {"depth", c.depth},
              {"num_heads", c.num_heads},
              {"mlp_ratio", c.mlp_ratio},
              {"qkv_bias", c.qkv_bias},
              {"with_cls_token", c.with_cls_token},
              {"norm_code", c.norm_code},
              {"ln_in_attn", c.ln_in_attn},
              {"conv_last_layer", c.conv_last_layer},
              {"use_rope", c.use_rope},
              {"use_final_proj", c.use_final_proj}};
  return obj.dump();
}

}  // namespace magi
