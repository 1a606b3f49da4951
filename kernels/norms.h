// Normalisations and the rotary embedding of the MAGI-1 DiT, computed in float32.
#ifndef MAGI_KERNELS_NORMS_H_
#define MAGI_KERNELS_NORMS_H_

#include <ATen/core/Tensor.h>

namespace magi {

// LayerNorm over the last dim with float32 statistics; returns float32.
// `one_plus` uses gamma = weight + 1 (apply_layernorm_1p), with the +1 evaluated in the
// weight's own dtype (spec dit.md §3.7c quirk for the xattn norms).
at::Tensor LayerNormF32(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps,
                        bool one_plus);

// Non-interleaved partial rotary (GPT-NeoX style) on x [..., d] (float32): pairs
// (i, i + r/2) for i < r/2 with r = 2 * cos.size(-1); dims >= r pass through.
// sin and cos have last dim r/2 and broadcast against x[..., :r/2]. On CUDA float32 tensors
// whose tables do not vary over the head axis (dim -2), the CUDA kernel runs it
// (kernels/cuda, CUDA LibTorch builds only).
at::Tensor ApplyRotary(const at::Tensor& x, const at::Tensor& sin, const at::Tensor& cos);

}  // namespace magi

#endif  // MAGI_KERNELS_NORMS_H_
