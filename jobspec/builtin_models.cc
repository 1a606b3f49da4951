#include "jobspec/builtin_models.h"

namespace magi {

::magi::internal::v1::ModelInfo TinyModelInfo() {
  ::magi::internal::v1::ModelInfo m;
  m.set_name(kTinyModelName);
  m.set_frames_per_chunk(24);  // MAGI-1: 6 latent frames x VAE temporal stride 4
  // ModelRunnerOptions' default limits (worker/runner/model_job_runner.h).
  m.set_max_frames(960);
  m.set_max_width(512);
  m.set_max_height(512);
  // The tiny set's runtime_config (TinyModelSetConfig).
  m.set_default_width(256);
  m.set_default_height(256);
  m.set_default_frames(48);
  m.set_default_fps(24);
  m.set_default_steps(8);
  m.set_max_steps(64);
  // serving_config defaults (the reference's run scripts): worker/model/config.h.
  m.add_special_tokens("PAD_HQ");
  m.add_special_tokens("PAD_DURATION");
  m.set_frames_multiple(4);          // the VAE's temporal factor
  m.set_latent_frames_per_chunk(6);  // chunk_width
  m.set_steps_multiple(4);           // lcm(window_size 2, 4 noise2clean kv ranges)
  m.set_size_multiple(16);           // VAE factor 8 x DiT patch 2
  m.set_min_size(32);                // two DiT patches
  m.add_cfg_numbers(1);              // distilled
  m.set_default_seed(1234);
  return m;
}

::magi::internal::v1::ModelInfo SyntheticModelInfo() {
  // Tiny's chunking, defaults and frame / step limits, so tests written against one fit the
  // other; none of a real model's rules (multiples, special tokens, cfg numbers, seed), and
  // larger frames: any shape the API allows up to 1280 x 1280.
  ::magi::internal::v1::ModelInfo m = TinyModelInfo();
  m.set_name(kSyntheticModelName);
  m.set_max_width(1280);
  m.set_max_height(1280);
  m.clear_special_tokens();
  m.clear_frames_multiple();
  m.clear_latent_frames_per_chunk();
  m.clear_steps_multiple();
  m.clear_size_multiple();
  m.clear_min_size();
  m.clear_cfg_numbers();
  m.clear_default_seed();
  return m;
}

}  // namespace magi
