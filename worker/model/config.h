// MAGI-1's config.json: model_config, runtime_config and engine_config, with the
// reference's field names. Parsing is strict: a missing, unknown or ill-typed field, or an
// inconsistent combination (heads not divisible by groups, ...), is an InvalidArgument
// error that names the field and what is allowed.
#ifndef MAGI_WORKER_MODEL_CONFIG_H_
#define MAGI_WORKER_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/model/special_token_flags.h"

namespace magi {

// Parameter dtype of the DiT ("torch.float32" / "torch.bfloat16" in the file).
enum class ParamsDtype { kFloat32, kBFloat16 };

struct ModelConfig {
  std::string model_name = "videodit_ardf";
  int num_layers = 0;
  int hidden_size = 0;
  int ffn_hidden_size = 0;
  int num_attention_heads = 0;
  int num_query_groups = 0;
  int kv_channels = 0;
  double layernorm_epsilon = 1e-6;
  bool apply_layernorm_1p = true;
  double x_rescale_factor = 1.0;
  bool half_channel_vae = false;
  ParamsDtype params_dtype = ParamsDtype::kBFloat16;
  int patch_size = 2;
  int t_patch_size = 1;
  int in_channels = 16;
  int out_channels = 16;
  double cond_hidden_ratio = 0.25;
  int caption_channels = 4096;
  int caption_max_length = 800;
  double xattn_cond_hidden_ratio = 1.0;
  double cond_gating_ratio = 1.0;
  bool gated_linear_unit = false;

  // Derived widths (spec dit.md §1.1).
  int cond_dim() const { return static_cast<int>(hidden_size * cond_hidden_ratio); }
  int xattn_dim() const { return static_cast<int>(hidden_size * xattn_cond_hidden_ratio); }
  int query_dim() const { return num_attention_heads * kv_channels; }
  int kv_dim() const { return num_query_groups * kv_channels; }
  int fc1_out() const { return gated_linear_unit ? 2 * ffn_hidden_size : ffn_hidden_size; }
  int latent_channels() const { return half_channel_vae ? 16 : in_channels; }
};

struct RuntimeConfig {
  int cfg_number = 3;
  std::vector<double> cfg_t_range;
  std::vector<double> prev_chunk_scales;
  std::vector<double> text_scales;
  std::vector<int> noise2clean_kvrange;
  int clean_chunk_kvrange = 1;
  double clean_t = 0.9999;
  int64_t seed = 1234;
  int num_frames = 96;
  int video_size_h = 720;
  int video_size_w = 720;
  int num_steps = 64;
  int window_size = 4;
  int fps = 24;
  int chunk_width = 6;
  std::string load;            // DiT checkpoint folder ("" = none)
  std::string t5_pretrained;   // T5 folder ("" = none)
  std::string t5_device = "cpu";
  std::string vae_pretrained;  // VAE folder ("" = none)
  double scale_factor = 0.18215;
  int temporal_downsample_factor = 4;
};

struct EngineConfig {
  std::string distributed_backend = "nccl";
  int distributed_timeout_minutes = 15;
  int pp_size = 1;
  int cp_size = 1;
  std::string cp_strategy = "none";
  int ulysses_overlap_degree = 1;
  bool fp8_quant = false;
  double distill_nearly_clean_chunk_threshold = 0.3;
  std::string shortcut_mode = "8,16,16";
  bool distill = false;
  bool kv_offload = false;
  bool enable_cuda_graph = false;
};

// magi-serve's own, optional top-level section "serving_config": how the served path
// (magi-worker --runner=model, magi generate --model_dir) conditions the model, i.e. the
// reference's run-script environment (spec pipeline.md §8.5) per model. Every key is
// optional; unknown keys are errors. Keys: the lower-cased variable names pad_static,
// pad_dynamic, pad_borderness, pad_hq, pad_three_d_model, pad_two_d_anime, pad_duration,
// neg_prompt (true/false), prev_chunks_scale (number in [0, 1]) and name (the model name the
// worker registers with the server, [A-Za-z0-9._-]{1,64}; magi-worker --model_name overrides
// it, and without either the folder's basename is used). A config.json without
// the section (the released ones) gets the run scripts' defaults: pad_hq and pad_duration
// on, the rest off, prev_chunks_scale 0.7. Any token on needs special_tokens.npz next to
// config.json.
struct ServingConfig {
  SpecialTokenFlags special_tokens = SpecialTokenFlags::RunScriptDefaults();
  double prev_chunks_scale = 0.7;
  std::string name;  // "" = not set (the worker falls back to --model_name / the folder name)
};

// A served model name: 1-64 characters of [A-Za-z0-9._-]. InvalidArgument naming `what`
// (the flag or field) and the allowed form.
absl::Status CheckModelName(const std::string& name, const std::string& what);

// serving_config's key for a token flag (its environment name lower-cased, "pad_hq").
std::string ServingKey(const SpecialTokenFlags::Field& f);

struct MagiConfig {
  ModelConfig model;
  RuntimeConfig runtime;
  EngineConfig engine;
  ServingConfig serving;
};

// Parses the JSON text of a MAGI-1 config.json. `source` names the file in errors.
absl::StatusOr<MagiConfig> ParseMagiConfig(const std::string& json_text, const std::string& source);
// Reads and parses a config.json file.
absl::StatusOr<MagiConfig> LoadMagiConfig(const std::string& path);
// Serialises back to the reference's JSON layout (round-trips through ParseMagiConfig).
std::string MagiConfigToJson(const MagiConfig& config);

// Checks the combinations the model and pipeline rely on; the message names the field.
absl::Status ValidateModelConfig(const ModelConfig& m);
absl::Status ValidateMagiConfig(const MagiConfig& c);

}  // namespace magi

#endif  // MAGI_WORKER_MODEL_CONFIG_H_
