// T5 encode time of one 800-token caption with a medium T5 v1.1 config (random weights
// written to a temp folder by WriteRandomT5Folder), against the embedding-cache hit time.
// Prints the ratio; both numbers are measured in this run.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "worker/t5/embedding_cache.h"
#include "worker/t5/random_t5_checkpoint.h"
#include "worker/t5/t5_encoder.h"

int main() {
  namespace fs = std::filesystem;
  using Clock = std::chrono::steady_clock;
  at::set_num_threads(2);
  const int64_t D = 512, H = 8, dk = 64, F = 1024, layers = 8, vocab = 32128, L = 800;
  const fs::path dir = fs::temp_directory_path() / ("magi_bench_t5_" + std::to_string(::getpid()));
  magi::T5Config config;
  config.vocab_size = vocab;
  config.d_model = D;
  config.d_kv = dk;
  config.d_ff = F;
  config.num_layers = layers;
  config.num_heads = H;
  if (auto s = magi::WriteRandomT5Folder(config, dir.string(), 0); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
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
