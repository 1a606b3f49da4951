#include "worker/vae/random_vae_checkpoint.h"

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "worker/model/safetensors.h"

namespace magi {

VaeConfig ReleasedVaeConfig() {
  VaeConfig c;
  c.video_size = 256;
  c.video_length = 16;
  c.patch_size = 8;
  c.patch_length = 4;
  c.in_chans = 3;
  c.z_chans = 16;
  c.double_z = true;
  c.embed_dim = 1024;
  c.depth = 24;
  c.num_heads = 16;
  c.mlp_ratio = 4.0;
  c.qkv_bias = true;
  c.with_cls_token = true;
  c.norm_code = false;
  c.ln_in_attn = true;
  c.conv_last_layer = true;
  c.use_rope = false;
  c.use_final_proj = false;
  return c;
}

std::map<std::string, at::Tensor> RandomVaeWeights(const VaeConfig& c, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto normal = [&](std::vector<int64_t> shape, double std) { return at::normal(0.0, std, shape, gen); };
  auto weight = [&](std::vector<int64_t> shape) {
    int64_t fan_in = 1;
    for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
    return normal(shape, 1.0 / std::sqrt(static_cast<double>(fan_in)));
  };
  auto bias = [&](int64_t n) { return normal({n}, 0.1); };
  std::map<std::string, at::Tensor> w;
  const int64_t C = c.embed_dim, hid = c.mlp_hidden();
  auto layer_norm = [&](const std::string& p) {
    w[p + ".weight"] = normal({C}, 0.1) + 1.0;
    w[p + ".bias"] = bias(C);
  };
  for (const std::string p : {"encoder", "decoder"}) {
    w[p + ".cls_token"] = normal({1, 1, C}, 0.5);
    w[p + ".pos_embed"] = normal({1, c.num_patches() + 1, C}, 0.5);
    for (int64_t i = 0; i < c.depth; ++i) {
      const std::string b = absl::StrCat(p, ".blocks.", i, ".");
      if (!c.ln_in_attn) layer_norm(b + "norm1");
      w[b + "attn.qkv.weight"] = weight({3 * C, C});
      if (c.qkv_bias) w[b + "attn.qkv.bias"] = bias(3 * C);
      w[b + "attn.proj.weight"] = weight({C, C});
      w[b + "attn.proj.bias"] = bias(C);
      layer_norm(b + "norm2");
      w[b + "mlp.fc1.weight"] = weight({hid, C});
      w[b + "mlp.fc1.bias"] = bias(hid);
      w[b + "mlp.fc2.weight"] = weight({C, hid});
      w[b + "mlp.fc2.bias"] = bias(C);
    }
    layer_norm(p + ".norm");
  }
  w["encoder.patch_embed.proj.weight"] = weight({C, c.in_chans, c.patch_length, c.patch_size, c.patch_size});
  w["encoder.patch_embed.proj.bias"] = bias(C);
  w["encoder.last_layer.weight"] = weight({c.encoder_out_channels(), C});
  w["encoder.last_layer.bias"] = bias(c.encoder_out_channels());
  w["decoder.proj_in.weight"] = weight({C, c.z_chans});
  w["decoder.proj_in.bias"] = bias(C);
  w["decoder.last_layer.weight"] = weight({c.in_chans, c.unpatch_channels(), 3, 3, 3});
  w["decoder.last_layer.bias"] = bias(c.in_chans);
  return w;
}

absl::Status WriteVaeFolder(const VaeConfig& config, const std::map<std::string, at::Tensor>& weights,
                            const std::string& folder) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create VAE folder '", folder, "': ", ec.message()));
  {
    std::ofstream out(fs::path(folder) / "config.json");
    out << R"({"_class_name": "ViTVAE", "model_type": "vit", "ddconfig": )" << VaeDdconfigJson(config) << "}\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", folder, "/config.json"));
  }
  try {
    return WriteSafetensors((fs::path(folder) / "diffusion_pytorch_model.safetensors").string(), weights);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("VAE weights: ", e.what()));
  }
}

absl::Status WriteRandomVaeFolder(const VaeConfig& config, const std::string& folder, uint64_t seed) {
  return WriteVaeFolder(config, RandomVaeWeights(config, seed), folder);
}

}  // namespace magi
