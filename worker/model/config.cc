#include "worker/model/config.h"

#include <cctype>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "absl/strings/str_join.h"

namespace magi {
namespace {

using nlohmann::json;

// Reads the fields of one config section, remembering which ones were consumed so that
// unknown fields can be reported.
class SectionReader {
 public:
  SectionReader(const json& obj, std::string section, std::string source)
      : obj_(obj), section_(std::move(section)), source_(std::move(source)) {}

  absl::Status Int(const char* name, int* out, int64_t lo, int64_t hi) {
    int64_t v = 0;
    MAGI_RETURN_IF_ERROR(Int64(name, &v, lo, hi));
    *out = static_cast<int>(v);
    return absl::OkStatus();
  }
  absl::Status Int64(const char* name, int64_t* out, int64_t lo, int64_t hi) {
    const json* v;
    MAGI_RETURN_IF_ERROR(Field(name, &v));
    if (!v->is_number_integer() && !(v->is_number_float() && std::floor(v->get<double>()) == v->get<double>())) {
      return Err(name, absl::StrCat("must be an integer in [", lo, ", ", hi, "], got ", v->dump()));
    }
    // Range-checked before any conversion: a huge float (4e96) or unsigned value has no int64.
    const bool in_range = v->is_number_unsigned() ? v->get<uint64_t>() <= static_cast<uint64_t>(std::max<int64_t>(hi, 0)) &&
                                                        static_cast<int64_t>(v->get<uint64_t>()) >= lo
                          : v->is_number_integer() ? v->get<int64_t>() >= lo && v->get<int64_t>() <= hi
                                                   : v->get<double>() >= static_cast<double>(lo) &&
                                                         v->get<double>() <= static_cast<double>(hi);
    if (!in_range) return Err(name, absl::StrCat("must be in [", lo, ", ", hi, "], got ", v->dump()));
    const int64_t x = v->is_number_integer() ? v->get<int64_t>() : static_cast<int64_t>(v->get<double>());
    *out = x;
    return absl::OkStatus();
  }
  absl::Status Double(const char* name, double* out, double lo, double hi) {
    const json* v;
    MAGI_RETURN_IF_ERROR(Field(name, &v));
    if (!v->is_number()) return Err(name, absl::StrCat("must be a number in [", lo, ", ", hi, "], got ", v->dump()));
    double x = v->get<double>();
    if (!(x >= lo && x <= hi)) return Err(name, absl::StrCat("must be in [", lo, ", ", hi, "], got ", x));
    *out = x;
    return absl::OkStatus();
  }
  absl::Status Bool(const char* name, bool* out) {
    const json* v;
    MAGI_RETURN_IF_ERROR(Field(name, &v));
    if (!v->is_boolean()) return Err(name, absl::StrCat("must be true or false, got ", v->dump()));
    *out = v->get<bool>();
    return absl::OkStatus();
  }
  // null is accepted as "" for path-like fields.
  absl::Status String(const char* name, std::string* out, bool nullable,
                      const std::vector<std::string>& allowed = {}) {
    const json* v;
    MAGI_RETURN_IF_ERROR(Field(name, &v));
    if (v->is_null() && nullable) {
      out->clear();
      return absl::OkStatus();
    }
    if (!v->is_string()) return Err(name, absl::StrCat("must be a string, got ", v->dump()));
    std::string x = v->get<std::string>();
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), x) == allowed.end()) {
      return Err(name, absl::StrCat("must be one of \"", absl::StrJoin(allowed, "\", \""), "\", got \"", x, "\""));
    }
    *out = x;
    return absl::OkStatus();
  }
  absl::Status DoubleList(const char* name, std::vector<double>* out, double lo, double hi) {
    const json* v;
    MAGI_RETURN_IF_ERROR(Field(name, &v));
    if (!v->is_array()) return Err(name, absl::StrCat("must be a list of numbers, got ", v->dump()));
    out->clear();
    for (const auto& e : *v) {
      if (!e.is_number()) return Err(name, absl::StrCat("must contain only numbers, got ", e.dump()));
      double x = e.get<double>();
      if (!(x >= lo && x <= hi)) return Err(name, absl::StrCat("entries must be in [", lo, ", ", hi, "], got ", x));
      out->push_back(x);
    }
    return absl::OkStatus();
  }
  absl::Status IntList(const char* name, std::vector<int>* out, int lo, int hi) {
    const json* v;
    MAGI_RETURN_IF_ERROR(Field(name, &v));
    if (!v->is_array()) return Err(name, absl::StrCat("must be a list of integers, got ", v->dump()));
    out->clear();
    for (const auto& e : *v) {
      if (!e.is_number_integer()) return Err(name, absl::StrCat("must contain only integers, got ", e.dump()));
      int64_t x = e.get<int64_t>();
      if (x < lo || x > hi) return Err(name, absl::StrCat("entries must be in [", lo, ", ", hi, "], got ", x));
      out->push_back(static_cast<int>(x));
    }
    return absl::OkStatus();
  }
  absl::Status ParamsDtypeField(const char* name, ParamsDtype* out) {
    std::string s;
    MAGI_RETURN_IF_ERROR(String(name, &s, false, {"torch.float32", "torch.bfloat16"}));
    *out = s == "torch.float32" ? ParamsDtype::kFloat32 : ParamsDtype::kBFloat16;
    return absl::OkStatus();
  }

  // Every key of the section must have been read.
  absl::Status CheckNoUnknown() const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (!seen_.count(it.key())) {
        return absl::InvalidArgumentError(absl::StrCat(source_, ": unknown field ", section_, ".", it.key(),
                                                       " (not a MAGI-1 ", section_, " field)"));
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Field(const char* name, const json** v) {
    seen_.insert(name);
    auto it = obj_.find(name);
    if (it == obj_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(source_, ": missing field ", section_, ".", name));
    }
    *v = &*it;
    return absl::OkStatus();
  }
  absl::Status Err(const char* name, const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": field ", section_, ".", name, " ", what));
  }

  const json& obj_;
  std::string section_;
  std::string source_;
  std::set<std::string> seen_;
};

absl::Status ParseModel(const json& j, const std::string& src, ModelConfig* m) {
  SectionReader r(j, "model_config", src);
  constexpr int64_t kBig = 1 << 20;
  MAGI_RETURN_IF_ERROR(r.String("model_name", &m->model_name, false, {"videodit_ardf"}));
  MAGI_RETURN_IF_ERROR(r.Int("num_layers", &m->num_layers, 1, 1024));
  MAGI_RETURN_IF_ERROR(r.Int("hidden_size", &m->hidden_size, 1, kBig));
  MAGI_RETURN_IF_ERROR(r.Int("ffn_hidden_size", &m->ffn_hidden_size, 1, kBig));
  MAGI_RETURN_IF_ERROR(r.Int("num_attention_heads", &m->num_attention_heads, 1, 4096));
  MAGI_RETURN_IF_ERROR(r.Int("num_query_groups", &m->num_query_groups, 1, 4096));
  MAGI_RETURN_IF_ERROR(r.Int("kv_channels", &m->kv_channels, 1, 4096));
  MAGI_RETURN_IF_ERROR(r.Double("layernorm_epsilon", &m->layernorm_epsilon, 0.0, 1.0));
  MAGI_RETURN_IF_ERROR(r.Bool("apply_layernorm_1p", &m->apply_layernorm_1p));
  MAGI_RETURN_IF_ERROR(r.Double("x_rescale_factor", &m->x_rescale_factor, 1e-6, 1e6));
  MAGI_RETURN_IF_ERROR(r.Bool("half_channel_vae", &m->half_channel_vae));
  MAGI_RETURN_IF_ERROR(r.ParamsDtypeField("params_dtype", &m->params_dtype));
  MAGI_RETURN_IF_ERROR(r.Int("patch_size", &m->patch_size, 1, 64));
  MAGI_RETURN_IF_ERROR(r.Int("t_patch_size", &m->t_patch_size, 1, 64));
  MAGI_RETURN_IF_ERROR(r.Int("in_channels", &m->in_channels, 1, 4096));
  MAGI_RETURN_IF_ERROR(r.Int("out_channels", &m->out_channels, 1, 4096));
  MAGI_RETURN_IF_ERROR(r.Double("cond_hidden_ratio", &m->cond_hidden_ratio, 1e-6, 64));
  MAGI_RETURN_IF_ERROR(r.Int("caption_channels", &m->caption_channels, 1, kBig));
  MAGI_RETURN_IF_ERROR(r.Int("caption_max_length", &m->caption_max_length, 2, kBig));
  MAGI_RETURN_IF_ERROR(r.Double("xattn_cond_hidden_ratio", &m->xattn_cond_hidden_ratio, 1e-6, 64));
  MAGI_RETURN_IF_ERROR(r.Double("cond_gating_ratio", &m->cond_gating_ratio, 1e-6, 64));
  MAGI_RETURN_IF_ERROR(r.Bool("gated_linear_unit", &m->gated_linear_unit));
  return r.CheckNoUnknown();
}

absl::Status ParseRuntime(const json& j, const std::string& src, RuntimeConfig* rt) {
  SectionReader r(j, "runtime_config", src);
  MAGI_RETURN_IF_ERROR(r.Int("cfg_number", &rt->cfg_number, 1, 3));
  MAGI_RETURN_IF_ERROR(r.DoubleList("cfg_t_range", &rt->cfg_t_range, 0.0, 1.0));
  MAGI_RETURN_IF_ERROR(r.DoubleList("prev_chunk_scales", &rt->prev_chunk_scales, -1e3, 1e3));
  MAGI_RETURN_IF_ERROR(r.DoubleList("text_scales", &rt->text_scales, -1e3, 1e3));
  MAGI_RETURN_IF_ERROR(r.IntList("noise2clean_kvrange", &rt->noise2clean_kvrange, 1, 1 << 20));
  MAGI_RETURN_IF_ERROR(r.Int("clean_chunk_kvrange", &rt->clean_chunk_kvrange, -1, 1 << 20));
  MAGI_RETURN_IF_ERROR(r.Double("clean_t", &rt->clean_t, 0.0, 1.0));
  MAGI_RETURN_IF_ERROR(r.Int64("seed", &rt->seed, 0, INT64_MAX));
  MAGI_RETURN_IF_ERROR(r.Int("num_frames", &rt->num_frames, 1, 1 << 20));
  MAGI_RETURN_IF_ERROR(r.Int("video_size_h", &rt->video_size_h, 1, 1 << 16));
  MAGI_RETURN_IF_ERROR(r.Int("video_size_w", &rt->video_size_w, 1, 1 << 16));
  MAGI_RETURN_IF_ERROR(r.Int("num_steps", &rt->num_steps, 1, 100000));
  MAGI_RETURN_IF_ERROR(r.Int("window_size", &rt->window_size, 1, 64));
  MAGI_RETURN_IF_ERROR(r.Int("fps", &rt->fps, 1, 1000));
  MAGI_RETURN_IF_ERROR(r.Int("chunk_width", &rt->chunk_width, 1, 1024));
  MAGI_RETURN_IF_ERROR(r.String("load", &rt->load, true));
  MAGI_RETURN_IF_ERROR(r.String("t5_pretrained", &rt->t5_pretrained, true));
  MAGI_RETURN_IF_ERROR(r.String("t5_device", &rt->t5_device, false, {"cpu", "cuda"}));
  MAGI_RETURN_IF_ERROR(r.String("vae_pretrained", &rt->vae_pretrained, true));
  MAGI_RETURN_IF_ERROR(r.Double("scale_factor", &rt->scale_factor, 1e-9, 1e9));
  MAGI_RETURN_IF_ERROR(r.Int("temporal_downsample_factor", &rt->temporal_downsample_factor, 1, 64));
  return r.CheckNoUnknown();
}

absl::Status ParseEngine(const json& j, const std::string& src, EngineConfig* e) {
  SectionReader r(j, "engine_config", src);
  MAGI_RETURN_IF_ERROR(r.String("distributed_backend", &e->distributed_backend, false, {"nccl", "gloo"}));
  MAGI_RETURN_IF_ERROR(r.Int("distributed_timeout_minutes", &e->distributed_timeout_minutes, 1, 100000));
  MAGI_RETURN_IF_ERROR(r.Int("pp_size", &e->pp_size, 1, 1));
  MAGI_RETURN_IF_ERROR(r.Int("cp_size", &e->cp_size, 1, 1024));
  MAGI_RETURN_IF_ERROR(r.String("cp_strategy", &e->cp_strategy, false, {"none", "cp_ulysses", "cp_shuffle_overlap"}));
  MAGI_RETURN_IF_ERROR(r.Int("ulysses_overlap_degree", &e->ulysses_overlap_degree, 1, 1024));
  MAGI_RETURN_IF_ERROR(r.Bool("fp8_quant", &e->fp8_quant));
  MAGI_RETURN_IF_ERROR(r.Double("distill_nearly_clean_chunk_threshold", &e->distill_nearly_clean_chunk_threshold, 0.0, 1.0));
  MAGI_RETURN_IF_ERROR(r.String("shortcut_mode", &e->shortcut_mode, false, {"8,16,16", "16,16,8"}));
  MAGI_RETURN_IF_ERROR(r.Bool("distill", &e->distill));
  MAGI_RETURN_IF_ERROR(r.Bool("kv_offload", &e->kv_offload));
  MAGI_RETURN_IF_ERROR(r.Bool("enable_cuda_graph", &e->enable_cuda_graph));
  return r.CheckNoUnknown();
}

}  // namespace

absl::Status CheckModelName(const std::string& name, const std::string& what) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char ch : name) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": model name '", name.substr(0, 80), "' is invalid; allowed: 1-64 characters of [A-Za-z0-9._-]"));
  }
  return absl::OkStatus();
}

// serving_config's key for a token flag: its environment name lower-cased.
std::string ServingKey(const SpecialTokenFlags::Field& f) {
  std::string key = f.env;
  for (char& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return key;
}

namespace {

// Optional section, optional keys (see ServingConfig).
absl::Status ParseServing(const json& j, const std::string& src, ServingConfig* sv) {
  SectionReader r(j, "serving_config", src);
  for (const SpecialTokenFlags::Field& f : SpecialTokenFlags::Fields()) {
    const std::string key = ServingKey(f);
    if (j.contains(key)) MAGI_RETURN_IF_ERROR(r.Bool(key.c_str(), &(sv->special_tokens.*f.member)));
  }
  if (j.contains("prev_chunks_scale")) MAGI_RETURN_IF_ERROR(r.Double("prev_chunks_scale", &sv->prev_chunks_scale, 0.0, 1.0));
  if (j.contains("name")) {
    MAGI_RETURN_IF_ERROR(r.String("name", &sv->name, false));
    MAGI_RETURN_IF_ERROR(CheckModelName(sv->name, absl::StrCat(src, ": serving_config.name")));
  }
  if (auto s = r.CheckNoUnknown(); !s.ok()) {
    std::vector<std::string> keys;
    for (const SpecialTokenFlags::Field& f : SpecialTokenFlags::Fields()) {
      keys.push_back(ServingKey(f));
    }
    keys.push_back("prev_chunks_scale");
    keys.push_back("name");
    return absl::InvalidArgumentError(absl::StrCat(s.message(), "; allowed: ", absl::StrJoin(keys, ", ")));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateModelConfig(const ModelConfig& m) {
  auto bad = [](const std::string& msg) { return absl::InvalidArgumentError(absl::StrCat("model_config: ", msg)); };
  if (m.num_attention_heads % m.num_query_groups != 0) {
    return bad(absl::StrCat("num_attention_heads (", m.num_attention_heads, ") must be divisible by num_query_groups (",
                            m.num_query_groups, ")"));
  }
  if (m.hidden_size % m.num_attention_heads != 0 || m.hidden_size / m.num_attention_heads != m.kv_channels) {
    return bad(absl::StrCat("kv_channels (", m.kv_channels, ") must equal hidden_size / num_attention_heads (",
                            m.hidden_size, " / ", m.num_attention_heads, "): RoPE uses the one, attention the other"));
  }
  if (m.kv_channels % 8 != 0) {
    return bad(absl::StrCat("kv_channels (", m.kv_channels, ") must be a multiple of 8 (RoPE bands = head_dim / 8)"));
  }
  if (m.query_dim() % 8 != 0) {
    return bad(absl::StrCat("num_attention_heads * kv_channels (", m.query_dim(),
                            ") must be divisible by 8 (the hard-coded 8-way interleave before linear_proj)"));
  }
  if (static_cast<int>(m.hidden_size * m.cond_gating_ratio) != m.hidden_size) {
    return bad(absl::StrCat("cond_gating_ratio (", m.cond_gating_ratio, ") must make the gate width equal hidden_size"));
  }
  if (m.cond_dim() < 1) return bad("cond_hidden_ratio * hidden_size must be at least 1");
  if (m.xattn_dim() < 1) return bad("xattn_cond_hidden_ratio * hidden_size must be at least 1");
  if (m.half_channel_vae && (m.in_channels != 32 || m.out_channels != 32)) {
    return bad(absl::StrCat("half_channel_vae requires in_channels = out_channels = 32 (hard-coded 16 -> 32), got ",
                            m.in_channels, " / ", m.out_channels));
  }
  if (!m.half_channel_vae && m.in_channels != m.out_channels) {
    return bad(absl::StrCat("in_channels (", m.in_channels, ") must equal out_channels (", m.out_channels, ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateMagiConfig(const MagiConfig& c) {
  MAGI_RETURN_IF_ERROR(ValidateModelConfig(c.model));
  const RuntimeConfig& r = c.runtime;
  auto bad = [](const std::string& msg) { return absl::InvalidArgumentError(absl::StrCat("runtime_config: ", msg)); };
  if (r.cfg_number == 2) return bad("cfg_number must be 1 or 3 (the reference defines no 2-pass guidance)");
  if (r.cfg_t_range.size() != r.prev_chunk_scales.size() || r.cfg_t_range.size() != r.text_scales.size()) {
    return bad(absl::StrCat("cfg_t_range, prev_chunk_scales and text_scales must have equal lengths, got ",
                            r.cfg_t_range.size(), ", ", r.prev_chunk_scales.size(), ", ", r.text_scales.size()));
  }
  for (size_t i = 1; i < r.cfg_t_range.size(); ++i) {
    if (r.cfg_t_range[i] < r.cfg_t_range[i - 1]) return bad("cfg_t_range must be non-decreasing");
  }
  if (r.num_steps % r.window_size != 0) {
    return bad(absl::StrCat("num_steps (", r.num_steps, ") must be divisible by window_size (", r.window_size, ")"));
  }
  if (!r.noise2clean_kvrange.empty() && r.num_steps % static_cast<int>(r.noise2clean_kvrange.size()) != 0) {
    return bad(absl::StrCat("num_steps (", r.num_steps, ") must be divisible by the length of noise2clean_kvrange (",
                            r.noise2clean_kvrange.size(), ")"));
  }
  if (r.video_size_h % (8 * c.model.patch_size) != 0 || r.video_size_w % (8 * c.model.patch_size) != 0) {
    return bad(absl::StrCat("video_size_h and video_size_w must be multiples of ", 8 * c.model.patch_size,
                            " (VAE 8x times patch ", c.model.patch_size, "), got ", r.video_size_h, "x", r.video_size_w));
  }
  if (c.engine.cp_size > 1 && c.engine.cp_strategy == "none") {
    return absl::InvalidArgumentError("engine_config: cp_strategy must not be \"none\" when cp_size > 1");
  }
  return absl::OkStatus();
}

absl::StatusOr<MagiConfig> ParseMagiConfig(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": top level must be an object"));
  MagiConfig c;
  for (const char* section : {"model_config", "runtime_config", "engine_config"}) {
    if (!j.contains(section) || !j[section].is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": missing object field ", section));
    }
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "model_config" && it.key() != "runtime_config" && it.key() != "engine_config" &&
        it.key() != "serving_config") {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": unknown top-level field ", it.key(),
          " (allowed: model_config, runtime_config, engine_config, optional serving_config)"));
    }
  }
  if (j.contains("serving_config")) {
    if (!j["serving_config"].is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": serving_config must be an object"));
    }
    MAGI_RETURN_IF_ERROR(ParseServing(j["serving_config"], source, &c.serving));
  }
  MAGI_RETURN_IF_ERROR(ParseModel(j["model_config"], source, &c.model));
  MAGI_RETURN_IF_ERROR(ParseRuntime(j["runtime_config"], source, &c.runtime));
  MAGI_RETURN_IF_ERROR(ParseEngine(j["engine_config"], source, &c.engine));
  if (auto s = ValidateMagiConfig(c); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
  }
  return c;
}

absl::StatusOr<MagiConfig> LoadMagiConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config file '", path, "' cannot be opened"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseMagiConfig(ss.str(), path);
}

std::string MagiConfigToJson(const MagiConfig& c) {
  const ModelConfig& m = c.model;
  const RuntimeConfig& r = c.runtime;
  const EngineConfig& e = c.engine;
  auto path = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  json j = {
      {"model_config",
       {{"model_name", m.model_name}, {"num_layers", m.num_layers}, {"hidden_size", m.hidden_size},
        {"ffn_hidden_size", m.ffn_hidden_size}, {"num_attention_heads", m.num_attention_heads},
        {"num_query_groups", m.num_query_groups}, {"kv_channels", m.kv_channels},
        {"layernorm_epsilon", m.layernorm_epsilon}, {"apply_layernorm_1p", m.apply_layernorm_1p},
        {"x_rescale_factor", m.x_rescale_factor}, {"half_channel_vae", m.half_channel_vae},
        {"params_dtype", m.params_dtype == ParamsDtype::kFloat32 ? "torch.float32" : "torch.bfloat16"},
        {"patch_size", m.patch_size}, {"t_patch_size", m.t_patch_size}, {"in_channels", m.in_channels},
        {"out_channels", m.out_channels}, {"cond_hidden_ratio", m.cond_hidden_ratio},
        {"caption_channels", m.caption_channels}, {"caption_max_length", m.caption_max_length},
        {"xattn_cond_hidden_ratio", m.xattn_cond_hidden_ratio}, {"cond_gating_ratio", m.cond_gating_ratio},
        {"gated_linear_unit", m.gated_linear_unit}}},
      {"runtime_config",
       {{"cfg_number", r.cfg_number}, {"cfg_t_range", r.cfg_t_range}, {"prev_chunk_scales", r.prev_chunk_scales},
        {"text_scales", r.text_scales}, {"noise2clean_kvrange", r.noise2clean_kvrange},
        {"clean_chunk_kvrange", r.clean_chunk_kvrange}, {"clean_t", r.clean_t}, {"seed", r.seed},
        {"num_frames", r.num_frames}, {"video_size_h", r.video_size_h}, {"video_size_w", r.video_size_w},
        {"num_steps", r.num_steps}, {"window_size", r.window_size}, {"fps", r.fps}, {"chunk_width", r.chunk_width},
        {"load", path(r.load)}, {"t5_pretrained", path(r.t5_pretrained)}, {"t5_device", r.t5_device},
        {"vae_pretrained", path(r.vae_pretrained)}, {"scale_factor", r.scale_factor},
        {"temporal_downsample_factor", r.temporal_downsample_factor}}},
      {"engine_config",
       {{"distributed_backend", e.distributed_backend}, {"distributed_timeout_minutes", e.distributed_timeout_minutes},
        {"pp_size", e.pp_size}, {"cp_size", e.cp_size}, {"cp_strategy", e.cp_strategy},
        {"ulysses_overlap_degree", e.ulysses_overlap_degree}, {"fp8_quant", e.fp8_quant},
        {"distill_nearly_clean_chunk_threshold", e.distill_nearly_clean_chunk_threshold},
        {"shortcut_mode", e.shortcut_mode}, {"distill", e.distill}, {"kv_offload", e.kv_offload},
        {"enable_cuda_graph", e.enable_cuda_graph}}}};
  json serving = json::object();
  for (const SpecialTokenFlags::Field& f : SpecialTokenFlags::Fields()) {
    serving[ServingKey(f)] = c.serving.special_tokens.*f.member;
  }
  serving["prev_chunks_scale"] = c.serving.prev_chunks_scale;
  if (!c.serving.name.empty()) serving["name"] = c.serving.name;
  j["serving_config"] = serving;
  return j.dump(4);
}

}  // namespace magi
