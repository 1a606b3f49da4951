// The small DiT of the model tests: spec dit.md §10 geometry (latent 8x8 -> 4x4 tokens,
// chunk_width 2 -> 32 tokens per chunk), 4 heads / 2 K/V groups of 16, GELU or GLU MLP.
#ifndef MAGI_TESTS_MODEL_SMALL_DIT_CONFIG_H_
#define MAGI_TESTS_MODEL_SMALL_DIT_CONFIG_H_

#include "worker/model/config.h"
#include "worker/model/random_checkpoint.h"

namespace magi {

inline ModelConfig SmallDitConfig(bool glu, int layers = 3) {
  ModelConfig m = TinyMagiConfig().model;
  m.num_layers = layers;
  m.hidden_size = 64;
  m.num_attention_heads = 4;
  m.num_query_groups = 2;
  m.kv_channels = 16;
  m.ffn_hidden_size = 96;
  m.gated_linear_unit = glu;
  m.caption_channels = 32;
  m.caption_max_length = 16;
  m.half_channel_vae = false;
  m.x_rescale_factor = 1.0;
  m.in_channels = m.out_channels = 4;
  return m;
}

}  // namespace magi

#endif  // MAGI_TESTS_MODEL_SMALL_DIT_CONFIG_H_
