// WriteTinyModelSet: the embedded default model "tiny" -- a complete MAGI-1 model set with
// random weights, generated deterministically from a seed into a folder in the released
// layouts, so that `magi-server --local-workers N` serves real generations (T5 -> DiT AR
// engine -> VAE) without downloading anything. The set is read back ONLY through the real
// loaders (LoadMagiConfig, Checkpoint + DitModel, T5Tokenizer / T5Encoder, ViTVae), so it
// exercises exactly the code paths a released checkpoint does.
//
// Layout of `dir`:
//   config.json             MAGI-1 config (model_config / runtime_config / engine_config);
//                           runtime_config.load / t5_pretrained / vae_pretrained are the
//                           sub-folder names below, relative to `dir`.
//   dit/model.safetensors   DiT weights (RandomDitWeights, float32)
//   t5/config.json, t5/model.safetensors, t5/spiece.model
//                           HF T5EncoderModel layout; the SentencePiece model is trained at
//                           generation time by Debian's `spm_train` on a generated corpus,
//                           with T5's ids (pad 0, eos 1, unk 2, no bos)
//   vae/config.json, vae/diffusion_pytorch_model.safetensors   ViTVAE folder
//   special_tokens.npz      caption/logo/other special tokens in the released npz layout,
//                           random, caption_channels wide; config.json's serving_config
//                           enables PAD_HQ and PAD_DURATION (the run scripts' defaults)
//   tiny_model.json         manifest (name, seed, format version); written last, so its
//                           presence marks a complete set
//
// Consistency: T5 d_model = DiT caption_channels; VAE z_chans 16 = DiT latent channels
// (half_channel_vae); caption_max_length is the tokenizer length; chunk_width 6 latent
// frames x VAE temporal factor 4 = 24 video frames per chunk, like MAGI-1.
//
// Atomicity: everything is written into a sibling temp folder which is then renamed onto
// `dir`, so a crash never leaves a half model. If `dir` already holds a complete set with
// the same seed and format it is reused; several processes may race to create it (the
// loser discards its copy and uses the winner's). A complete set of an older format with
// the same seed (e.g. format 1, without special_tokens.npz) is regenerated and replaced.
//
// Thread safety: reentrant (no shared state); concurrent callers on one `dir` are safe.
#ifndef MAGI_WORKER_RUNNER_TINY_MODEL_H_
#define MAGI_WORKER_RUNNER_TINY_MODEL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/model/config.h"
#include "worker/vae/vae_config.h"

namespace magi {

inline constexpr uint64_t kTinyModelSeed = 20250601;
inline constexpr int kTinyModelFormat = 3;  // 2: special_tokens.npz + serving_config; 3: the world's words in the corpus

// The MAGI-1 config of the tiny set (sub-folder paths relative, as written to config.json).
MagiConfig TinyModelSetConfig();

// The tiny set's VAE: the released ViTVAE's flags and patch geometry at a tiny width.
VaeConfig TinyVaeConfig();

// Creates the set in `dir` (parents created) unless a complete one with this seed is there.
// Errors name the path or the failing step (e.g. spm_train's exit status and log).
absl::Status WriteTinyModelSet(const std::string& dir, uint64_t seed = kTinyModelSeed);

// True if `dir` holds a complete set (manifest present, with this seed and format).
bool TinyModelSetComplete(const std::string& dir, uint64_t seed = kTinyModelSeed);

}  // namespace magi

#endif  // MAGI_WORKER_RUNNER_TINY_MODEL_H_
