// Training the MAGI-1 DiT on the synthetic physics world (issue #17, step 2 of
// `magi-train-tiny`): LibTorch autograd on the CPU through the inference model itself
// (DitModel::NamedWeights made trainable in place), with MAGI-1's objective.
//
// Objective (flow matching, the engine's convention: t = 0 noise, t = 1 clean, the sampler
// integrates x += v dt): a chunk at t is x_t = (1 - t) noise + t clean and its target velocity
// is clean - noise; the loss is the mean squared error over the noisy chunks' latents.
//
// What a training sample is: one forward of the engine's own plan (ArEngine::Plan, reference
// order) for a world clip -- a random step of a t2v plan or of a v2v plan whose first chunk is
// the clean prefix -- replayed without a KV cache. Every chunk the step's window reads is in
// the forward at its place in the video: chunks already clean (the prefix, the chunk of the
// extra clean pass, chunks the window reads from the cache) at clean_t with the null caption
// and the key range of their clean pass, so their keys and values are exactly those the
// engine caches; the window's chunks at the step's timesteps (noise levels rising along the
// window), with the scene's caption and the step's block-causal key ranges. Given clean
// latents on the straight noise-to-clean path, that is the forward the engine runs at that
// step. Captions go through the set's T5 (frozen) with its special tokens, as Run() builds
// them. Latents: the set's VAE encoding of the clips (VaeCodec::EncodePrefix, the v2v prefix
// path), made once for all training scenes.
//
// Optimiser: Adam (tools/train_tiny/adam.h), gradient norm clipped to 1, warm-up 20 steps,
// then the rate decays linearly to a tenth at the last step.
#ifndef MAGI_TOOLS_TRAIN_TINY_TRAIN_DIT_H_
#define MAGI_TOOLS_TRAIN_TINY_TRAIN_DIT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "physics/world.h"
#include "worker/engine/chunk_captions.h"
#include "worker/engine/stage_plan.h"
#include "worker/model/config.h"
#include "worker/model/dit.h"

namespace magi {

class ModelJobRunner;

// The forward that replays step `step` of `plan` (a reference-order plan of `config`) without
// a KV cache, as training runs it: x is the first clip_end chunks of `latents` [1, C, T, h, w]
// -- the chunks the step reads from the cache, its extra clean chunk and the prefix at
// clean_t with the null caption and their clean pass's key ranges, the window's chunks at the
// step's t_in with `captions`' rows and the step's key ranges -- slice_point 0, all chunks
// in one forward. The caller puts clean latents where the step reads clean chunks and the
// step's inputs in its window chunks; the window chunks' outputs are then the engine's for
// that step (up to float32 rounding; tests/train/train_dit_test.cc compares them). With
// `null_text` every chunk gets the null caption and the caption dropout flag: the forward of
// the guidance's context-only pass (cfg_number 3, worker/engine/guidance.h).
absl::StatusOr<DitForwardArgs> ReplayStepArgs(const MagiConfig& config, const StagePlan& plan, int step,
                                              const at::Tensor& latents, const ChunkCaptions& captions,
                                              int64_t tokens_per_chunk, bool null_text = false);

struct DitTrainOptions {
  int steps = 1000;
  int batch = 4;                // plan steps (each of its own clip) per optimiser step
  int size = 64;                // the world's frame size, the model set's video size
  int chunks = 4;               // latent chunks per training clip
  double learning_rate = 5e-4;  // peak Adam rate
  double v2v_fraction = 0.5;    // share of samples drawn from the v2v plan
  uint64_t seed = 1;            // training scenes, plan steps and noise
  int scenes = 512;             // training scenes, encoded once
  int heldout_scenes = 4;       // scenes whose loss over every plan step is measured
  // Each noisy chunk's loss weighted 1 + late_weight x t^2 (t its noise level, 1 clean), as
  // a weighted mean: more weight on the nearly clean steps, where a resting object's last
  // error has to vanish. 0 weighs every chunk alike. The held-out loss is always unweighted.
  double late_weight = 0;
  // Each latent cell's loss weighted 1 + object_weight x c, c the share of its pixels (its
  // 4 frames x 8 x 8) that show an object (the world's labels), as a weighted mean, on top
  // of late_weight: a ball is one or two of a 64 x 64 frame's 64 latent cells, so the
  // unweighted loss is mostly the empty background, and an object's colour and motion a
  // small part of it. 0 weighs every cell alike. The held-out loss is always unweighted.
  double object_weight = 0;
  // An exponential moving average of the weights, updated after every step with decay
  // min(ema, (1 + step) / (10 + step)) (the usual warm-up): after training the model holds
  // the average, and the result the last step's weights. 0: no average (the model holds the
  // last step's weights). The average does not change training: the raw weights are
  // bit-equal with and without it.
  double ema = 0;
  // The share of samples trained as the guidance's context-only pass (ReplayStepArgs'
  // null_text): MAGI-1's caption dropout, which classifier-free guidance (cfg_number 3)
  // needs. 0: every sample sees its caption (and draws nothing more: the weights are as
  // without the option).
  double caption_dropout = 0;
  // The share of t2v samples drawn from the steps whose window holds the first chunk still
  // noisy: the only steps where nothing but the caption says what the scene holds (its
  // colours, shapes and motions), a few of the plan's steps otherwise. 0: every t2v step
  // alike (and nothing more is drawn: the weights are as without the option).
  double first_chunk_share = 0;
  // Those first-chunk steps only where chunk 0's noise level t_in (1 clean) is at most this:
  // the noisy end of its denoising, where text-to-video decides an object's path. 1: all of
  // them (and the weights are as without the option). A level below every step's is an
  // InvalidArgument naming the levels there are.
  double first_chunk_max_t = 1;
  // Each batch as pairs: sample 2k + 1 is sample 2k's scene mirrored left to right (every
  // object's x -> 1 - x and vx -> -vx, a scene of the same world: its walls are symmetric, and
  // its caption names the other direction), with the same plan step, noise and caption
  // dropout, so that the direction word is all that tells the pair's targets apart. Needs an
  // even batch; every training scene is encoded twice. false: as without the option.
  bool mirror_pairs = false;
  // The share of training scenes drawn from the world's single-object scenes
  // (physics::MakeSingleObjectScene of the scene's seed), each scene chosen by a draw of its
  // own seed: their captions name one colour, shape, motion and direction, with no other
  // object's words to tell apart, so what a direction word says is all in one object's path.
  // The held-out scenes stay the world's. 0: every scene the world's (the weights are as
  // without the option); 1: every one single-object.
  double single_object_share = 0;
  // Each chunk captioned as the scene is at its first frame (physics::CaptionAtFrame): a
  // direction word then names the way the object moves in that chunk. Without it every chunk
  // gets the scene's first caption, whose directions are wrong after a bounce off a wall, so
  // in later chunks a direction word is about as often wrong as right. Held-out scenes alike.
  bool chunk_captions = false;
  // Samples of a batch computed at once, each on its own thread with one ATen thread
  // (batch_gradient.h). Any count gives bit-equal weights: the samples are drawn in batch
  // order and their gradients summed in batch order.
  int workers = 1;
  // A fresh start: final_linear's weight starts at zero (the velocity starts at 0, as DiTs
  // initialise their output layer), so training does not first unlearn a random output.
  bool zero_init_output = false;
  // Called after every step: step (1-based), the step's loss and the gradient norm.
  std::function<void(int step, double loss, double grad_norm)> on_step;
};

struct DitTrainResult {
  // Mean loss of every step of both plans on held-out scenes with fixed noise, before and
  // after training (after: the weights the model holds, the average with options.ema > 0).
  double heldout_loss_before = 0;
  double heldout_loss_after = 0;
  // How much the captions steer the model: on the held-out scenes' t2v steps (same noise),
  // the mean loss with another held-out scene's caption minus the loss with the scene's own,
  // before and after training. About 0: the model ignores its captions. 0 exactly with one
  // held-out scene (its own caption is the other).
  double caption_gain_before = 0;
  double caption_gain_after = 0;
  // Likewise with the scene's own caption recoloured (every object's colour word the next
  // of the palette's): how much the model reads the colours. About 0: it draws the scene's
  // objects whatever colour the caption names.
  double colour_gain_before = 0;
  double colour_gain_after = 0;
  // The colour gain on the t2v steps whose window holds the first chunk still noisy: there
  // nothing but the caption says what colour an object is (later chunks can copy it from the
  // chunks before), so this is the figure text-to-video's colours depend on.
  double first_chunk_colour_gain_before = 0;
  double first_chunk_colour_gain_after = 0;
  // On the same first-chunk steps, with the caption of the scene with every object's
  // horizontal velocity reversed ("rolls to the right" -> "rolls to the left"): how much the
  // model reads the direction words, which text-to-video's motion depends on. About 0: it
  // moves the objects whichever way the caption says.
  double first_chunk_direction_gain_before = 0;
  double first_chunk_direction_gain_after = 0;
  // The direction gain after training, apart by noise level: one entry per first-chunk step
  // of the t2v plan, in plan order, with chunk 0's noise level there (t_in, 1 clean). Where
  // along the denoising a model reads the direction (text-to-video picks an object's path at
  // the few steps where its place is neither pure noise nor already drawn).
  std::vector<std::pair<double, double>> first_chunk_direction_gain_by_level;
  // With options.ema > 0: the last step's weights by checkpoint key (the model holds the
  // average) and their held-out loss. Empty and 0 otherwise.
  std::map<std::string, at::Tensor> raw_weights;
  double heldout_loss_raw = 0;
  double latent_std = 0;  // standard deviation of the training latents (scale_factor applied)
  int64_t parameters = 0;
  int plan_steps = 0;     // distinct forwards the samples are drawn from (t2v + v2v)
  double seconds = 0;
};

// The checks of `options` that need no model (ranges; the world's size and frame limits for
// clips of chunks x `frames_per_chunk` frames): InvalidArgument naming the option. TrainDit
// makes them first; the CLI makes them before it builds a set.
absl::Status CheckDitTrainOptions(const DitTrainOptions& options, int frames_per_chunk);

// The share of each latent cell's pixels that show an object, from the world's labels of
// `frames` (label != 0): [1, 1, latent_t, latent_h, latent_w] float32, each cell the mean over
// its frames.size() / latent_t frames x size / latent_h x size / latent_w pixels (the VAE's
// patch). InvalidArgument when the shapes do not divide.
absl::StatusOr<at::Tensor> LatentObjectShare(const std::vector<physics::RenderedFrame>& frames, int64_t latent_t,
                                             int64_t latent_h, int64_t latent_w);

// Trains the DiT of `runner` (a single-rank, float32 model set loaded on the CPU whose
// runtime video size is `size` x `size`) in place. Errors: InvalidArgument naming the option
// and its allowed range; a non-finite loss is an Internal error naming the step.
absl::StatusOr<DitTrainResult> TrainDit(const ModelJobRunner& runner, const DitTrainOptions& options);

// Writes the runner's DiT weights (by checkpoint key) to `path` as one safetensors file, the
// layout DitModel::Load reads; the second form writes `weights` (e.g. DitTrainResult's
// raw_weights) likewise.
absl::Status WriteDitWeights(const ModelJobRunner& runner, const std::string& path);
absl::Status WriteDitWeights(const std::map<std::string, at::Tensor>& weights, const std::string& path);

}  // namespace magi

#endif  // MAGI_TOOLS_TRAIN_TINY_TRAIN_DIT_H_
