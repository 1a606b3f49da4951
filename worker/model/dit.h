// The MAGI-1 diffusion transformer ("videodit_ardf"), spec dit.md.
//
// DitModel holds one rank's share of the weights (ShardLayout) and computes the velocity
// for a latent window of R chunks, each with its own timestep, caption row and self-attention
// key range. Dtypes: params_dtype float32 (goldens, tests) or bfloat16 (released
// checkpoints, with the reference's dtype flow, spec §7); fp8 checkpoints are decoded to
// bf16-exact weights at load with their scales kept (spec parallel.md §4, dit.md §6.3).
// Devices: any device ATen supports; the weights live on Options::device (each cut to this
// rank's TP shard on the mapped host tensor first, so a rank copies only what it keeps), and
// Forward() takes its inputs from any device and returns the velocity there. Memory: non-fp8
// linear_proj weights are held in float32 (the reference runs that GEMM in fp32; caching the
// upcast costs 2 bytes per parameter of that layer, e.g. 150 MB per 24B layer at TP 1).
//
// Thread safety: Forward() is const and may run concurrently on different KvCache objects.
// The model caches nothing between calls; KV state lives in the caller's KvCache.
#ifndef MAGI_WORKER_MODEL_DIT_H_
#define MAGI_WORKER_MODEL_DIT_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "absl/status/statusor.h"
#include "parallel/layout.h"
#include "worker/model/config.h"

namespace magi {

class Checkpoint;
class Communicator;
class KvCache;

// The arguments of one VideoDiTModel.forward call, with the reference's names (spec §2).
struct DitForwardArgs {
  at::Tensor x;                     // [N, C, T, H, W] float32 latent window
  at::Tensor t;                     // [N, R] float32, 0 = noise, 1 = clean
  at::Tensor y;                     // [N*R, 1, Ly, Cy] float32 caption embeddings
  at::Tensor xattn_mask;            // [N*R, 1, Ly] 0/1 (any integer or float dtype)
  at::Tensor caption_dropout_mask;  // [N] or [1] bool: adaLN row Ly-1 if true, Ly-2 if false
  at::Tensor kv_range;              // [N*R, 2] int: half-open key-token range per chunk
  int denoising_range_num = 1;      // R
  int slice_point = 0;              // absolute index of x's first chunk
  bool fwd_extra_1st_chunk = false;
  bool extract_prefix_video_feature = false;
  bool distill_nearly_clean_chunk = false;
  int num_steps = 0;                // for the distill dt embedding
  int distill_interval = 1;         // for the 12-step distill dt embedding
  KvCache* kv_cache = nullptr;      // nullptr: no cache (reference inference_params=None)
  bool update_kv_cache = false;
  // Hand this pass's K/V (rows [slice_point·M, ...), as update_kv_cache writes them) to
  // kv_cache->Write even where the reference would not use the cache (slice_point 0 without
  // extra chunk or prefix extraction) or update it. The engine's stream-first schedule records
  // the lead chunk's K/V with it; the cache it passes decides what to keep.
  bool record_kv = false;
};

// Optional capture of intermediate tensors, named as in the golden files
// (pre.x_embed, pre.condition, pre.y_xattn_flat, pre.rope, layer{i}.out,
// blocks.out_final_layernorm).
struct DitRecorder {
  std::map<std::string, at::Tensor> tensors;
};

class DitModel {
 public:
  struct Options {
    c10::Device device = c10::Device(c10::kCPU);
    // This rank's place in the tensor- and context-parallel groups. With tp_size > 1 the
    // model loads only its heads / MLP columns and all-reduces after linear_proj and fc2;
    // with cp_size > 1 it keeps only its token slice between layers and exchanges heads
    // around attention (Ulysses). Forward() still takes and returns the full window on
    // every rank, so a caller runs the same loop on every rank (SPMD).
    ShardLayout layout;
    Communicator* tp_comm = nullptr;  // required when layout.tp_size > 1; not owned
    Communicator* cp_comm = nullptr;  // required when layout.cp_size > 1; not owned
    // Add the distilled models' dt embedding (engine_config.distill).
    bool distill = false;
    // Reject checkpoint keys the model does not use.
    bool strict = true;
    // Rows (tokens x batch) per chunk of a layer's per-token work (norms, projections, MLP):
    // bounds those activations independently of the window. Every op is row-wise, so the chunk
    // size moves values only where BLAS blocks a GEMM of fewer rows differently (float32
    // roundings); tests vary it.
    // The rows are split evenly (ceil(rows / this) pieces of equal size): no short tail GEMM,
    // and one MAGI-1 chunk of 1,440 tokens (config M, 192x320) stays one piece.
    int64_t token_chunk_rows = 1536;
  };

  // Reads every weight from `checkpoint` (exact reference key names, shapes checked; fp8
  // layers when their keys are F8_E4M3). Errors name the file and the key. Side effect,
  // process-wide: installs the host allocator (worker/model/host_allocator.h) for forward
  // activations unless it already is (not in AddressSanitizer builds).
  static absl::StatusOr<std::unique_ptr<DitModel>> Load(const ModelConfig& config, Checkpoint& checkpoint,
                                                        const Options& options);
  ~DitModel();
  DitModel(const DitModel&) = delete;
  DitModel& operator=(const DitModel&) = delete;

  // Velocity [N, C, T, H, W] float32 for `args`. Validates shapes first: a mismatch is an
  // InvalidArgument naming the argument. `recorder` (optional) receives intermediates.
  absl::StatusOr<at::Tensor> Forward(const DitForwardArgs& args, DitRecorder* recorder = nullptr) const;

  // Several calls (each N = 1, e.g. of different requests) as one forward of batch N =
  // calls.size(): their windows must have the same frames, size and chunk count; everything
  // else is per call (timesteps, captions, key ranges, place in the video, KV cache and its
  // updates, distill step count). Returns each call's velocity [1, C, T, H, W] in order. Equal
  // to separate Forward() calls up to float32 rounding (the GEMMs see more rows). A call that
  // fails its checks fails the batch with an InvalidArgument naming its index.
  absl::StatusOr<std::vector<at::Tensor>> ForwardBatch(const std::vector<const DitForwardArgs*>& calls) const;

  // Every weight by its checkpoint key (videodit_blocks.layers.<i>.*, x_embedder.weight, ...),
  // as handles of the tensors the model computes with: setting requires_grad or replacing
  // their data (Tensor::set_data) changes the model (training, tools/train_tiny). A model
  // that holds a key differently from its checkpoint -- a tensor- or context-parallel shard
  // or an fp8 layer -- is a FailedPrecondition.
  absl::StatusOr<std::map<std::string, at::Tensor>> NamedWeights() const;

  const ModelConfig& config() const;
  const Options& options() const;
  // Bytes of the weights held by this rank.
  int64_t weight_bytes() const;
  // K/V groups whose cache rows this rank keeps (G / (tp * cp), at least 1): size a KvCache
  // with it.
  int kv_cache_groups() const;
  // Which of the model's K/V groups those are, in cache order (groups are replicated when
  // there are fewer per TP rank than CP ranks, as in the reference).
  static std::vector<int64_t> KvCacheGroupIndices(const ModelConfig& config, const ShardLayout& layout);
  // Analytic multiply-add FLOPs (x2) of one forward over `tokens` query tokens whose chunks
  // see `keys_per_query` keys on average, with `caption_tokens` valid caption tokens per row.
  static double ForwardFlops(const ModelConfig& config, int64_t tokens, int64_t keys_per_query,
                             int64_t caption_tokens, int64_t caption_rows);

 private:
  struct Impl;
  explicit DitModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace magi

#endif  // MAGI_WORKER_MODEL_DIT_H_
