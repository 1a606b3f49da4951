// The T5 v1.1 encoder (HF T5EncoderModel semantics, eval mode) in ATen, float32.
//
// Computation (spec/pipeline.md §4.1): h = shared[ids] (no scaling); a relative position
// bias from block 0's table, shared by every block, plus (1 - mask[k]) * finfo(f32).min on
// padded keys; per block: RMS norm (fp32), attention WITHOUT 1/sqrt(d_kv) scaling, softmax
// in fp32, residual; RMS norm, wo(gelu_tanh(wi_0 x) * wi_1 x), residual; final RMS norm.
// Every position, pads included, produces an output row.
//
// Weights: the HF layout (`shared.weight` and/or its tied twin `encoder.embed_tokens.weight`,
// `encoder.block.{i}.layer.{0,1}...`, `encoder.final_layer_norm.weight`), F32/BF16/F16;
// F32 tensors alias the mapped checkpoint (no copy) on CPU, others are converted to F32 once.
// Device: the weights live on the device given at load (runtime_config.t5_device: CPU, or the
// rank's GPU); Encode() takes its inputs from any device and computes there.
//
// Thread safety: immutable after Load(); Encode() may run from several threads at once.
// Not copyable; owns (a view of) its weights.
#ifndef MAGI_WORKER_T5_T5_ENCODER_H_
#define MAGI_WORKER_T5_T5_ENCODER_H_

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "absl/status/statusor.h"
#include "worker/t5/t5_config.h"

namespace magi {

class Checkpoint;

// HF `T5Attention._relative_position_bucket` for int64 `relative_position` (= key index -
// query index), same float32 op order, so buckets are bit-identical. Returns int64.
at::Tensor T5RelativePositionBucket(const at::Tensor& relative_position, bool bidirectional,
                                    int64_t num_buckets, int64_t max_distance);

class T5Encoder {
 public:
  // Intermediates for checking against reference vectors; filled by Encode() on request.
  struct Trace {
    at::Tensor embed;                        // [B, L, d_model]
    at::Tensor position_bias;                // [1, H, L, L], without the padding mask
    std::vector<at::Tensor> attn_residual;   // per block: h after the attention residual
    std::vector<at::Tensor> block_out;       // per block: block output
  };

  // Takes every tensor of the encoder from `ckpt` (shapes and dtypes checked) and fails
  // with the key names on anything missing, misshapen, or (strictly) left unused.
  // The weights are placed on `device`.
  static absl::StatusOr<std::unique_ptr<T5Encoder>> Load(const T5Config& config, Checkpoint& ckpt,
                                                         c10::Device device = c10::Device(c10::kCPU));
  // `config_path` is a HF config.json; `weights` a .safetensors file, an index.json or a folder.
  static absl::StatusOr<std::unique_ptr<T5Encoder>> LoadFiles(const std::string& config_path,
                                                              const std::string& weights,
                                                              c10::Device device = c10::Device(c10::kCPU));
  // A HF model folder: config.json + model.safetensors (or sharded with an index). A folder
  // holding only PyTorch `.bin` files gets an error pointing at docs/t5.md (conversion).
  static absl::StatusOr<std::unique_ptr<T5Encoder>> LoadFolder(const std::string& dir,
                                                               c10::Device device = c10::Device(c10::kCPU));

  T5Encoder(const T5Encoder&) = delete;
  T5Encoder& operator=(const T5Encoder&) = delete;

  // ids, mask: [B, L] integer tensors (mask 0/1, the same shape, ids in [0, vocab_size)).
  // Returns last_hidden_state, float32 [B, L, d_model], on the weights' device.
  absl::StatusOr<at::Tensor> Encode(const at::Tensor& ids, const at::Tensor& mask, Trace* trace = nullptr) const;

  // Relative position bias [1, H, L, L] (no mask), float32, on the weights' device.
  at::Tensor PositionBias(int64_t length) const;

  const T5Config& config() const { return config_; }
  c10::Device device() const { return shared_.device(); }
  // Bytes of weight tensors held (aliased or owned).
  int64_t weight_bytes() const;

 private:
  struct Block {
    at::Tensor ln0, q, k, v, o, ln1, wi0, wi1, wo;
  };
  explicit T5Encoder(const T5Config& config) : config_(config) {}
  absl::StatusOr<at::Tensor> EncodeImpl(const at::Tensor& ids, const at::Tensor& mask, Trace* trace) const;

  T5Config config_;
  at::Tensor shared_;          // [vocab, d_model]
  at::Tensor relative_bias_;   // [num_buckets, num_heads]
  at::Tensor final_ln_;        // [d_model]
  std::vector<Block> blocks_;
};

}  // namespace magi

#endif  // MAGI_WORKER_T5_T5_ENCODER_H_
