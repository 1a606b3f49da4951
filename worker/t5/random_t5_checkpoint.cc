#include "worker/t5/random_t5_checkpoint.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/model/safetensors.h"

namespace magi {

std::map<std::string, at::Tensor> RandomT5Weights(const T5Config& config, uint64_t seed) {
  const int64_t D = config.d_model, I = config.inner_dim(), F = config.d_ff;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto normal = [&](std::vector<int64_t> shape, double std) {
    return at::normal(0.0, std, shape, gen, at::TensorOptions().dtype(at::kFloat));
  };
  auto linear = [&](int64_t out, int64_t in) { return normal({out, in}, 1.0 / std::sqrt(static_cast<double>(in))); };
  std::map<std::string, at::Tensor> w;
  w["shared.weight"] = normal({config.vocab_size, D}, 1.0);
  w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] =
      normal({config.relative_attention_num_buckets, config.num_heads}, 0.5);
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string p = absl::StrCat("encoder.block.", i, ".layer.");
    w[p + "0.layer_norm.weight"] = 1 + normal({D}, 0.1);
    // T5 attention has no 1/sqrt(d_kv): keep the logits O(1) with a smaller q.
    w[p + "0.SelfAttention.q.weight"] = normal({I, D}, 1.0 / static_cast<double>(D));
    w[p + "0.SelfAttention.k.weight"] = linear(I, D);
    w[p + "0.SelfAttention.v.weight"] = linear(I, D);
    w[p + "0.SelfAttention.o.weight"] = linear(D, I);
    w[p + "1.layer_norm.weight"] = 1 + normal({D}, 0.1);
    w[p + "1.DenseReluDense.wi_0.weight"] = linear(F, D);
    w[p + "1.DenseReluDense.wi_1.weight"] = linear(F, D);
    w[p + "1.DenseReluDense.wo.weight"] = linear(D, F);
  }
  w["encoder.final_layer_norm.weight"] = 1 + normal({D}, 0.1);
  return w;
}

absl::Status WriteRandomT5Folder(const T5Config& config, const std::string& dir, uint64_t seed) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  const nlohmann::json cfg = {{"architectures", {"T5EncoderModel"}},
                              {"model_type", "t5"},
                              {"vocab_size", config.vocab_size},
                              {"d_model", config.d_model},
                              {"d_kv", config.d_kv},
                              {"d_ff", config.d_ff},
                              {"num_layers", config.num_layers},
                              {"num_heads", config.num_heads},
                              {"relative_attention_num_buckets", config.relative_attention_num_buckets},
                              {"relative_attention_max_distance", config.relative_attention_max_distance},
                              {"layer_norm_epsilon", config.layer_norm_epsilon},
                              {"feed_forward_proj", "gated-gelu"},
                              {"is_gated_act", true},
                              {"dense_act_fn", "gelu_new"},
                              {"pad_token_id", config.pad_token_id},
                              {"eos_token_id", config.eos_token_id},
                              {"torch_dtype", "float32"}};
  const fs::path config_path = fs::path(dir) / "config.json";
  {
    std::ofstream out(config_path, std::ios::binary | std::ios::trunc);
    out << cfg.dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat(config_path.string(), ": cannot write"));
  }
  return WriteSafetensors((fs::path(dir) / "model.safetensors").string(), RandomT5Weights(config, seed),
                          {{"format", "pt"}, {"generator", "magi-serve random_t5_checkpoint"}});
}

}  // namespace magi
