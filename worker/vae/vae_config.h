// The ViTVAE's configuration: the `ddconfig` dict of the checkpoint folder's config.json
// (spec pipeline.md §5.2), with the reference's field names and constructor defaults.
//
// Parsing is strict in the way the reference is: the reference builds ViTEncoder(**ddconfig),
// so an unknown key is an error; a missing key takes the constructor default. Values this
// port does not implement (use_rope, use_final_proj, ...) are rejected with the field name.
#ifndef MAGI_WORKER_VAE_VAE_CONFIG_H_
#define MAGI_WORKER_VAE_VAE_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace magi {

struct VaeConfig {
  // Defaults = ViTEncoder/ViTDecoder constructor defaults in the reference.
  int64_t video_size = 256;   // training tile size in pixels (pos_embed grid = video_size / patch_size)
  int64_t video_length = 16;  // training tile length in frames (grid = video_length / patch_length)
  int64_t patch_size = 8;     // spatial compression
  int64_t patch_length = 4;   // temporal compression
  int64_t in_chans = 3;
  int64_t z_chans = 4;
  bool double_z = true;
  int64_t embed_dim = 768;
  int64_t depth = 12;
  int64_t num_heads = 12;
  double mlp_ratio = 4.0;
  bool qkv_bias = false;
  bool with_cls_token = true;
  bool norm_code = false;
  bool ln_in_attn = false;
  bool conv_last_layer = false;
  bool use_rope = false;
  bool use_final_proj = false;

  // Derived sizes.
  int64_t latent_size() const { return video_size / patch_size; }
  int64_t latent_length() const { return video_length / patch_length; }
  int64_t num_patches() const { return latent_length() * latent_size() * latent_size(); }
  int64_t head_dim() const { return embed_dim / num_heads; }
  int64_t mlp_hidden() const { return static_cast<int64_t>(static_cast<double>(embed_dim) * mlp_ratio); }
  int64_t encoder_out_channels() const { return double_z ? 2 * z_chans : z_chans; }
  // Channels of the decoder's unpatchified volume before its 3x3x3 conv.
  int64_t unpatch_channels() const { return embed_dim / (patch_size * patch_size * patch_length); }
};

// Parses a ddconfig JSON object (text). `source` names where it came from, for messages.
// Errors: InvalidArgument naming the field and the allowed values.
absl::StatusOr<VaeConfig> ParseVaeDdconfig(const std::string& json_text, const std::string& source);

// Checks a config (parsed or built in code): sizes >= 1 and the combinations the
// reference's modules can build and this port implements. InvalidArgument naming the field.
absl::Status ValidateVaeConfig(const VaeConfig& config, const std::string& source);

// Reads a diffusers-style config.json ({"_class_name": "ViTVAE", "model_type": "vit",
// "ddconfig": {...}}). Keys starting with '_' other than _class_name are ignored.
absl::StatusOr<VaeConfig> LoadVaeConfigFile(const std::string& path);

// The ddconfig JSON object of `config` (every field), as ParseVaeDdconfig reads it.
std::string VaeDdconfigJson(const VaeConfig& config);

}  // namespace magi

#endif  // MAGI_WORKER_VAE_VAE_CONFIG_H_
