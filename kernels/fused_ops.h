// The DiT's fused hot ops (spec dit.md §3.7 h-j, §3.3). Each is one pass over the data on
// CUDA (kernels/cuda/fused_ops.cu, built when the CUDA toolkit is found) and an ATen
// composition on other devices: its CPU twin, which the tests check against the unfused
// reference math. Callers use these functions and never branch on the device.
#ifndef MAGI_KERNELS_FUSED_OPS_H_
#define MAGI_KERNELS_FUSED_OPS_H_

#include <ATen/core/Tensor.h>

namespace magi {

// out = cast_to(out_dtype)( LN1p(x * gate; w, b) + residual ) row by row, all in float32:
// x [rows, D] (float32), gate [rows, D] (any float dtype, per-token gate rows already
// gathered), w/b [D] float32 (gamma = w + 1), residual [rows, D] (any float dtype).
at::Tensor GatePostNormResidual(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight,
                                const at::Tensor& bias, const at::Tensor& residual, double eps,
                                at::ScalarType out_dtype);

// LN1p over the last dim in float32: gamma = weight + 1 (weight in its stored dtype).
at::Tensor LayerNorm1p(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// Whether this build has the CUDA kernels (they run only on CUDA tensors).
bool HaveCudaKernels();

}  // namespace magi

#endif  // MAGI_KERNELS_FUSED_OPS_H_
