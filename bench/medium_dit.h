// The "medium" DiT every benchmark measures: hidden 1024, 8 heads / 4 groups (head dim
// 128), GLU MLP (ffn 4096), 16 latent channels, and its window of 4 chunks of 6x12x20
// tokens (5760 tokens) with chunk j attending to chunks [0, j] (the engine's first full
// window). One definition, so the benchmarks' numbers compare.
#ifndef MAGI_BENCH_MEDIUM_DIT_H_
#define MAGI_BENCH_MEDIUM_DIT_H_

#include <ATen/ATen.h>

#include "worker/model/config.h"
#include "worker/model/dit.h"

namespace magi {

constexpr int kMediumChunks = 4, kMediumChunkFrames = 6, kMediumTokH = 12, kMediumTokW = 20;
constexpr int64_t kMediumChunkTokens = int64_t{kMediumChunkFrames} * kMediumTokH * kMediumTokW;
constexpr int64_t kMediumWindowTokens = kMediumChunks * kMediumChunkTokens;

inline ModelConfig MediumDitConfig(int layers, ParamsDtype dtype = ParamsDtype::kFloat32,
                                   int caption_channels = 4096, int caption_max_length = 256) {
  ModelConfig m;
  m.num_layers = layers;
  m.hidden_size = 1024;
  m.ffn_hidden_size = 4096;
  m.num_attention_heads = 8;
  m.num_query_groups = 4;
  m.kv_channels = 128;
  m.gated_linear_unit = true;
  m.params_dtype = dtype;
  m.in_channels = m.out_channels = 16;
  m.caption_channels = caption_channels;
  m.caption_max_length = caption_max_length;
  return m;
}

// The window forward's arguments, `caption_valid` caption tokens per chunk, fixed seed.
inline DitForwardArgs MediumWindowArgs(const ModelConfig& m, int caption_valid) {
  at::manual_seed(0);
  DitForwardArgs a;
  a.x = at::randn({1, 16, kMediumChunks * kMediumChunkFrames, kMediumTokH * 2, kMediumTokW * 2});
  a.t = at::rand({1, kMediumChunks});
  a.y = at::randn({kMediumChunks, 1, m.caption_max_length, m.caption_channels});
  a.xattn_mask = at::zeros({kMediumChunks, 1, m.caption_max_length}, at::kLong);
  a.xattn_mask.narrow(2, 0, caption_valid).fill_(1);
  a.caption_dropout_mask = at::zeros({1}, at::kBool);
  a.kv_range = at::zeros({kMediumChunks, 2}, at::kInt);
  for (int j = 0; j < kMediumChunks; ++j) a.kv_range[j][1] = (j + 1) * kMediumChunkTokens;
  a.denoising_range_num = kMediumChunks;
  a.num_steps = 16;
  return a;
}

}  // namespace magi

#endif  // MAGI_BENCH_MEDIUM_DIT_H_
