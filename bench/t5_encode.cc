// T5 encode time of one 800-token caption with a medium T5 v1.1 config (random weights
// written to a temp safetensors file), against the embedding-cache hit time. Prints the
// ratio; both numbers are measured in this run.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "worker/model/safetensors.h"
#include "worker/t5/embedding_cache.h"
#include "worker/t5/t5_encoder.h"

int main() {
  namespace fs = std::filesystem;
  using Clock = std::chrono::steady_clock;
  at::set_num_threads(2);
  const int64_t D = 512, H = 8, dk = 64, F = 1024, layers = 8, vocab = 32128, L = 800;
  const fs::path dir = fs::temp_directory_path() / ("magi_bench_t5_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << "{\"d_model\":" << D << ",\"d_kv\":" << dk << ",\"d_ff\":" << F
                                     << ",\"num_layers\":" << layers << ",\"num_heads\":" << H
                                     << ",\"vocab_size\":" << vocab << ",\"feed_forward_proj\":\"gated-gelu\"}";
  at::manual_seed(0);
  std::map<std::string, at::Tensor> w;
  w["shared.weight"] = at::randn({vocab, D});
  w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = at::randn({32, H});
  w["encoder.final_layer_norm.weight"] = at::ones({D});
  for (int64_t i = 0; i < layers; ++i) {
    const std::string p = "encoder.block." + std::to_string(i) + ".layer.";
    for (const char* n : {"q", "k", "v"}) w[p + "0.SelfAttention." + n + ".weight"] = at::randn({H * dk, D}) / 32.0;
    w[p + "0.SelfAttention.o.weight"] = at::randn({D, H * dk}) / 32.0;
    w[p + "0.layer_norm.weight"] = at::ones({D});
    w[p + "1.DenseReluDense.wi_0.weight"] = at::randn({F, D}) / 32.0;
    w[p + "1.DenseReluDense.wi_1.weight"] = at::randn({F, D}) / 32.0;
    w[p + "1.DenseReluDense.wo.weight"] = at::randn({D, F}) / 32.0;
    w[p + "1.layer_norm.weight"] = at::ones({D});
  }
  if (!magi::WriteSafetensors((dir / "model.safetensors").string(), w).ok()) return 1;
  w.clear();
  auto enc = magi::T5Encoder::LoadFolder(dir.string());
  if (!enc.ok()) {
    std::fprintf(stderr, "%s\n", std::string(enc.status().message()).c_str());
    return 1;
  }
  at::Tensor ids = at::randint(2, 1000, {1, L}, at::kLong), mask = at::ones({1, L}, at::kLong);
  (void)(*enc)->Encode(ids, mask);  // warm-up
  const int reps = 3;
  auto t0 = Clock::now();
  at::Tensor out;
  for (int i = 0; i < reps; ++i) out = *(*enc)->Encode(ids, mask);
  const double encode_s = std::chrono::duration<double>(Clock::now() - t0).count() / reps;

  magi::EmbeddingCache cache(1 << 30);
  cache.Insert("prompt", magi::CachedEmbedding{out, mask});
  const int hits = 100000;
  t0 = Clock::now();
  int64_t found = 0;
  for (int i = 0; i < hits; ++i) found += cache.Lookup("prompt").has_value();
  const double hit_s = std::chrono::duration<double>(Clock::now() - t0).count() / hits;
  std::printf("t5 medium (d_model %lld, %lld layers, %lld heads, d_ff %lld), 800 tokens, 2 threads\n",
              (long long)D, (long long)layers, (long long)H, (long long)F);
  std::printf("encode (cache miss): %.3f ms\n", encode_s * 1e3);
  std::printf("cache hit:           %.3f us (%lld hits)\n", hit_s * 1e6, (long long)found);
  std::printf("ratio miss/hit:      %.0fx\n", encode_s / hit_s);
  fs::remove_all(dir);
  return 0;
}
