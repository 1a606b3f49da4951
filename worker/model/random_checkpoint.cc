#include "worker/model/random_checkpoint.h"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "worker/model/safetensors.h"

namespace magi {

std::map<std::string, at::Tensor> RandomDitWeights(const ModelConfig& m, const RandomCheckpointOptions& o,
                                                   std::vector<std::string>* e4m3_keys) {
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  const at::ScalarType pd = m.params_dtype == ParamsDtype::kFloat32 ? at::kFloat : at::kBFloat16;
  auto normal = [&](std::vector<int64_t> shape, double std) {
    return at::normal(0.0, std, shape, gen, at::TensorOptions().dtype(at::kFloat));
  };
  auto linear = [&](int64_t out, int64_t in) { return normal({out, in}, 1.0 / std::sqrt(static_cast<double>(in))); };
  std::map<std::string, at::Tensor> w;
  const int64_t D = m.hidden_size, Dc = m.cond_dim(), Dx = m.xattn_dim(), Cy = m.caption_channels;
  const int64_t Qd = m.query_dim(), Kd = m.kv_dim(), hd = m.kv_channels;
  const int64_t patch_in = static_cast<int64_t>(m.in_channels) * m.t_patch_size * m.patch_size * m.patch_size;
  w["x_embedder.weight"] = normal({D, m.in_channels, m.t_patch_size, m.patch_size, m.patch_size},
                                  1.0 / std::sqrt(static_cast<double>(patch_in)));
  w["t_embedder.mlp.0.weight"] = linear(Dc, 256);
  w["t_embedder.mlp.0.bias"] = normal({Dc}, 0.1);
  w["t_embedder.mlp.2.weight"] = linear(Dc, Dc);
  w["t_embedder.mlp.2.bias"] = normal({Dc}, 0.1);
  w["y_embedder.y_proj_xattn.0.weight"] = linear(Dx, Cy);
  w["y_embedder.y_proj_xattn.0.bias"] = normal({Dx}, 0.1);
  w["y_embedder.y_proj_adaln.0.weight"] = linear(Dc, Cy);
  w["y_embedder.y_proj_adaln.0.bias"] = normal({Dc}, 0.1);
  w["y_embedder.null_caption_embedding"] = normal({m.caption_max_length, Cy}, 1.0);
  const int64_t nb = hd / 8;
  at::Tensor bands = at::pow(10000.0, -at::arange(nb, at::kFloat) / static_cast<double>(nb));
  w["rope.bands"] = bands * (1 + (at::rand({nb}, gen) * 0.2 - 0.1));
  w["videodit_blocks.final_layernorm.weight"] = normal({D}, 0.1);
  w["videodit_blocks.final_layernorm.bias"] = normal({D}, 0.1);
  w["final_linear.linear.weight"] =
      linear(static_cast<int64_t>(m.patch_size) * m.patch_size * m.t_patch_size * m.out_channels, D);
  auto ln1p = [&](const std::string& key, int64_t dim) {
    w[key + ".weight"] = normal({dim}, 0.1);
    w[key + ".bias"] = normal({dim}, 0.1);
  };
  auto ln = [&](const std::string& key, int64_t dim) {
    w[key + ".weight"] = 1 + normal({dim}, 0.1);
    w[key + ".bias"] = normal({dim}, 0.1);
  };
  for (int i = 0; i < m.num_layers; ++i) {
    const std::string p = absl::StrCat("videodit_blocks.layers.", i, ".");
    const std::string sa = p + "self_attention.";
    const bool quant = o.fp8 && i >= 1 && i <= m.num_layers - 2;
    auto block_linear = [&](const std::string& key, int64_t out, int64_t in, bool smoothed) {
      at::Tensor weight = linear(out, in);
      if (!quant) {
        w[key + ".weight"] = weight.to(pd);
        return;
      }
      // Per-tensor weight scale so the codes span the e4m3 range; activation scales near 1
      // (a non-constant input_scale vector pins down the reference's first-element rule).
      const float wscale = weight.abs().max().item<float>() / 448.0f;
      w[key + ".weight"] = EncodeE4M3(weight / wscale).view({1, out, in});
      e4m3_keys->push_back(key + ".weight");
      w[key + ".weight_scale"] = at::full({1}, wscale);
      if (smoothed) {
        w[key + ".input_scale"] = at::full({1}, 0.05f);
        w[key + ".smooth_scale"] = (0.5 + at::rand({1, in}, gen)).to(at::kFloat);
      } else {
        w[key + ".input_scale"] = (0.02 + at::rand({in}, gen) * 0.02).to(at::kFloat);
      }
    };
    w[p + "ada_modulate_layer.proj.0.weight"] = linear(2 * D, Dc).to(pd);
    w[p + "ada_modulate_layer.proj.0.bias"] = normal({2 * D}, 0.1).to(pd);
    ln(sa + "linear_qkv.layer_norm", D);
    block_linear(sa + "linear_qkv.q", Qd, D, false);
    block_linear(sa + "linear_qkv.qx", Qd, D, false);
    block_linear(sa + "linear_qkv.k", Kd, D, false);
    block_linear(sa + "linear_qkv.v", Kd, D, false);
    w[sa + "linear_kv_xattn.weight"] = linear(2 * Kd, Dx).to(pd);
    block_linear(sa + "linear_proj", D, 2 * Qd, true);
    ln1p(sa + "q_layernorm", hd);
    ln1p(sa + "k_layernorm", hd);
    ln1p(sa + "q_layernorm_xattn", hd);
    ln1p(sa + "k_layernorm_xattn", hd);
    ln1p(p + "self_attn_post_norm", D);
    ln(p + "mlp.layer_norm", D);
    ln1p(p + "mlp_post_norm", D);
    block_linear(p + "mlp.linear_fc1", m.fc1_out(), D, false);
    block_linear(p + "mlp.linear_fc2", D, m.ffn_hidden_size, true);
  }
  return w;
}

absl::Status WriteRandomDitCheckpoint(const ModelConfig& config, const std::string& path,
                                      const RandomCheckpointOptions& options) {
  std::vector<std::string> e4m3;
  auto weights = RandomDitWeights(config, options, &e4m3);
  return WriteSafetensors(path, weights, {{"format", "pt"}, {"generator", "magi-serve random_checkpoint"}}, e4m3);
}

MagiConfig TinyMagiConfig() {
  MagiConfig c;
  ModelConfig& m = c.model;
  m.num_layers = 2;
  m.hidden_size = 128;
  m.ffn_hidden_size = 256;
  m.num_attention_heads = 4;
  m.num_query_groups = 2;
  m.kv_channels = 32;
  m.x_rescale_factor = 0.1;
  m.half_channel_vae = true;
  m.params_dtype = ParamsDtype::kFloat32;
  m.in_channels = 32;
  m.out_channels = 32;
  m.caption_channels = 64;
  m.caption_max_length = 16;
  m.gated_linear_unit = true;
  RuntimeConfig& r = c.runtime;
  r.cfg_number = 1;
  r.cfg_t_range = {0.0, 0.0217, 0.1, 0.3, 0.999};
  r.prev_chunk_scales = {1.5, 1.5, 1.5, 1.0, 1.0};
  r.text_scales = {7.5, 7.5, 7.5, 0.0, 0.0};
  r.noise2clean_kvrange = {5, 4, 3, 2};
  r.num_frames = 32;
  r.video_size_h = 32;
  r.video_size_w = 48;
  r.num_steps = 8;
  r.window_size = 2;
  r.chunk_width = 2;
  c.engine.distributed_backend = "gloo";
  c.engine.distill = true;
  return c;
}

}  // namespace magi
