#include "worker/engine/denoiser.h"

#include <ATen/ATen.h>

#include "base/status_macros.h"
#include "worker/model/checkpoint.h"

namespace magi {

absl::StatusOr<at::Tensor> LoadNullCaption(Checkpoint& checkpoint, const ModelConfig& config) {
  MAGI_ASSIGN_OR_RETURN(at::Tensor t, checkpoint.Take("y_embedder.null_caption_embedding",
                                                      {config.caption_max_length, config.caption_channels},
                                                      {StDtype::kF32, StDtype::kBF16, StDtype::kF16}));
  return t.to(at::kFloat).clone();
}

}  // namespace magi
