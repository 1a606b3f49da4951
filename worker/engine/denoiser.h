// What the engine needs from a diffusion model: one VideoDiTModel.forward call. The DiT
// implements it through DitDenoiser; tests and the golden replay plug in fakes that return
// recorded outputs, so the sampler logic can be checked without a model.
//
// Thread safety: implementations are used from one engine thread at a time.
#ifndef MAGI_WORKER_ENGINE_DENOISER_H_
#define MAGI_WORKER_ENGINE_DENOISER_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "absl/status/statusor.h"
#include "worker/model/dit.h"

namespace magi {

class Checkpoint;

class Denoiser {
 public:
  virtual ~Denoiser() = default;
  // Velocity [N, C, T, H, W] float32 for `args` (spec dit.md §2); errors pass through.
  virtual absl::StatusOr<at::Tensor> Forward(const DitForwardArgs& args) = 0;
  // Device the engine keeps its state on.
  virtual c10::Device device() const = 0;
  // K/V groups of the KV cache this rank keeps (fewer than the model's under TP/CP).
  virtual int kv_cache_groups(const ModelConfig& config) const { return config.num_query_groups; }
};

// Adapter over a loaded DitModel (not owned; must outlive the adapter).
class DitDenoiser : public Denoiser {
 public:
  explicit DitDenoiser(const DitModel& model) : model_(model) {}
  absl::StatusOr<at::Tensor> Forward(const DitForwardArgs& args) override { return model_.Forward(args); }
  c10::Device device() const override { return model_.options().device; }
  int kv_cache_groups(const ModelConfig&) const override { return model_.kv_cache_groups(); }

 private:
  const DitModel& model_;
};

// y_embedder.null_caption_embedding [caption_max_length, caption_channels] as float32 on
// CPU, read from `checkpoint` (the pipeline builds the null text rows from it, §4.5).
absl::StatusOr<at::Tensor> LoadNullCaption(Checkpoint& checkpoint, const ModelConfig& config);

}  // namespace magi

#endif  // MAGI_WORKER_ENGINE_DENOISER_H_
