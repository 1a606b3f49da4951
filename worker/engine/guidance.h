// Classifier-free guidance around the DiT (the reference's forward_dispatcher, spec
// pipeline.md §3): cfg_number 3 runs three passes per step (text + context, context only,
// unconditional per chunk) and mixes them with scales chosen by each chunk's t; cfg_number
// 1 runs one pass, with the nearly-clean chunk appended and blended 0.7 / 0.3.
// cfg_number 2 does not exist in the reference and is rejected.
//
// All combination arithmetic is float32 in the reference's op order, so that given the
// same model outputs the velocities are bit-identical. Stateless functions; the KV cache
// passed in is mutated by the cache-writing pass only.
#ifndef MAGI_WORKER_ENGINE_GUIDANCE_H_
#define MAGI_WORKER_ENGINE_GUIDANCE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/engine/denoiser.h"

namespace magi {

class Communicator;
class KvCache;

struct GuidanceConfig {
  int cfg_number = 1;                     // 1 or 3
  std::vector<double> cfg_t_range;        // breakpoints, ascending
  std::vector<double> prev_chunk_scales;  // same length as cfg_t_range
  std::vector<double> text_scales;        // same length as cfg_t_range
  double prev_chunks_scale = 0.7;         // nearly-clean blend weight (env prev_chunks_scale)
  // cfg_number 1, nearly clean: when the first noisy chunk attends only to itself (its key
  // range is its own chunk: the lead chunk of a video with no prefix chunk, before any chunk
  // is clean), the appended self-only copy would compute that chunk's own output again at a
  // shifted RoPE position (q.k depends only on position differences); skip the copy and
  // blend the chunk's output with itself. Same result up to float32 rounding of the rotary
  // angles; one chunk fewer in those forwards. Off: the reference's exact calls (goldens
  // replay them call by call).
  bool elide_self_only_copy = false;
  int chunk_width = 6;                    // latent frames per chunk
  int64_t tokens_per_chunk = 0;           // DiT tokens of one chunk
  // CFG-parallel (spec parallel.md §3): cfg_number 3's passes split over the ranks of this
  // group (2 or 3 ranks, each with the whole DiT or its own TP/CP share; not owned). Null or
  // one rank: every pass here. See CfgPasses.
  Communicator* cfg_comm = nullptr;
};

// Which of cfg_number 3's passes a rank of a CFG-parallel group of `size` runs: B1 (text +
// context) on rank 0, B2 (context only, the cache-writing pass) on rank 1, B3 (unconditional,
// every noisy chunk alone) on rank 2 of 3 -- or, of 2, its chunks split in two halves, the
// first half with B1 on rank 0 (B3 costs about 65% of B1 at a full window, so the halves
// balance). B1 reads the cache B2 writes: CfgCacheMirror sends B2's writes to rank 0.
struct CfgPasses {
  bool text = true;            // B1
  bool context = true;         // B2
  int64_t uncond_begin = 0;    // B3: noisy chunks [uncond_begin, uncond_end) of m
  int64_t uncond_end = 0;
  static CfgPasses For(int rank, int size, int64_t noisy_chunks);
  // Rank that runs B3 for noisy chunk j of m.
  static int UncondOwner(int64_t j, int size, int64_t noisy_chunks);
};

// CFG-parallel's shared state, the KV cache: only B2 writes it (on rank 1), B1 (on rank 0)
// reads the same rows, so after every dispatcher call the rows B2 wrote are broadcast and
// written into rank 0's cache too. Rank 0 cannot make them itself: the clean chunk's K/V
// differ between the passes (adaLN takes null_caption_embedding row Ly-2 in B1, Ly-1 in B2;
// spec dit.md §3.5), so spec parallel.md §3's "identical in A and B" does not hold.
// Bytes per dispatcher call: one clean chunk's K/V, all layers, this rank's share (computed for
// the 24B at 720p: 48 layers x 21,600 tokens x 8 groups x 2 x 128 x 2 bytes = 4.2 GB in bf16
// unsharded, 0.53 GB per rank at CP 8; once per stage).
class CfgCacheMirror {
 public:
  // `cache`: this rank's real cache on `device` (not owned); `comm`: the CFG group (size >= 2).
  CfgCacheMirror(Communicator& comm, KvCache* cache, c10::Device device);
  ~CfgCacheMirror();
  // What this rank's passes use as the real cache: on the B2 rank, a front that keeps what
  // is written; elsewhere the cache itself.
  KvCache* cache();
  // Collective, after each dispatcher call: rank 1's writes of that call reach rank 0's cache.
  absl::Status Sync();

 private:
  class Capture;
  Communicator& comm_;
  KvCache* cache_;
  c10::Device device_;
  std::unique_ptr<Capture> capture_;
};

// Checks a CFG-parallel group against cfg_number: 2 or 3 ranks, cfg_number 3 (a distilled or
// fp8 model's single pass has nothing to split); errors name `field`.
absl::Status ValidateCfgParallel(int cfg_number, int ranks, const std::string& field);

// Checks cfg_number (1 or 3) and that the three scale lists have equal non-zero length;
// errors name the field.
absl::Status ValidateGuidanceConfig(const GuidanceConfig& options);

// One dispatcher call: n chunks (the extra clean chunk first, if any), batch row 0 only.
struct GuidanceStep {
  at::Tensor x;                                   // [1, C, n·cw, h, w] float32
  std::vector<float> t;                           // n timesteps
  std::vector<at::Tensor> text_rows, text_masks;  // n: row-0 caption [L, Cy] / mask [L]
  std::vector<at::Tensor> null_rows, null_masks;  // n: row-1 (null) caption / mask
  std::vector<std::array<int64_t, 2>> kv_range;   // n key-token ranges
  int slice_point = 0;
  bool fwd_extra_1st_chunk = false;
  bool extract_prefix_video_feature = false;
  bool distill_nearly_clean_chunk = false;
  int num_steps = 0;
  int distill_interval = 1;
  // Stream-first schedule: the passes that use the cache hand their K/V to it even where the
  // reference's would not (DitForwardArgs::record_kv), and the text pass of cfg_number 3 (B1)
  // uses `text_pass_cache` instead of the dispatcher's cache when set (it sees the lead
  // chunk's K/V of its own pass, which differ from the null-text pass's). Not owned.
  bool record_kv = false;
  KvCache* text_pass_cache = nullptr;
};

// Sees every inner model call: its index within the step, the arguments and the output.
using ForwardObserver = std::function<void(int call, const DitForwardArgs& args, const at::Tensor& out)>;

// The guided velocity [1, C, n·cw, h, w] float32 for `step`: window chunks hold the
// combined velocity; the extra chunk's slot holds its input latent (or, with the
// nearly-clean blend, the model output, as in the reference). `cancelled` (optional) is
// polled before each model call and turns into a CancelledError.
absl::StatusOr<at::Tensor> GuidedVelocity(Denoiser& model, KvCache* cache, const GuidanceConfig& options,
                                          const GuidanceStep& step, const ForwardObserver& observer = nullptr,
                                          const std::function<bool()>& cancelled = nullptr);

// Index b of the guidance bucket for `t`: (number of breakpoints e with fp32(e) − 1e-7 < t)
// − 1, computed in float32 like torch.searchsorted. OutOfRange when b < 0.
absl::StatusOr<int> CfgBucket(float t, const std::vector<double>& cfg_t_range);

// ((1 − s_prev)·uncond + (s_prev − s_text)·cond_pre) + s_text·cond_pre_text, fp32, in this
// exact order (spec §3.2 erratum 1).
at::Tensor CombineCfg3(const at::Tensor& uncond, const at::Tensor& cond_pre, const at::Tensor& cond_pre_text,
                       float prev_scale, float text_scale);

// with_context·fp32(g) + self_only·fp32(1 − g), 1 − g formed in double (spec §3.4).
at::Tensor BlendNearlyClean(const at::Tensor& with_context, const at::Tensor& self_only, double g);

}  // namespace magi

#endif  // MAGI_WORKER_ENGINE_GUIDANCE_H_
