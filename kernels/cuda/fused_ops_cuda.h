// ATen-facing wrappers of the CUDA kernels, used by kernels/fused_ops.cc on CUDA tensors
// when the build has a CUDA LibTorch (MAGI_HAVE_CUDA_KERNELS). Header-only so that a CPU
// LibTorch build never compiles it.
#ifndef MAGI_KERNELS_CUDA_FUSED_OPS_CUDA_H_
#define MAGI_KERNELS_CUDA_FUSED_OPS_CUDA_H_

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include "kernels/cuda/fused_ops_kernels.h"

namespace magi {
namespace cuda {

inline at::Tensor GatePostNormResidual(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight,
                                       const at::Tensor& bias, const at::Tensor& residual, double eps,
                                       at::ScalarType out_dtype) {
  const int64_t dim = x.size(-1), rows = x.numel() / dim;
  at::Tensor xf = x.to(at::kFloat).contiguous(), w = weight.to(at::kFloat).contiguous(),
             b = bias.to(at::kFloat).contiguous();
  const bool bf16 = out_dtype == at::kBFloat16;
  // Gate and residual stay float32 whatever the output dtype, as in the CPU twin
  // (kernels/fused_ops.cc): only the sum is rounded to out_dtype.
  at::Tensor g = gate.to(at::kFloat).contiguous();
  at::Tensor r = residual.to(at::kFloat).contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options().dtype(bf16 ? at::kBFloat16 : at::kFloat));
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  cudaError_t err;
  if (bf16) {
    err = LaunchGatePostNormResidual<__nv_bfloat16>(
        xf.data_ptr<float>(), g.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), r.data_ptr<float>(),
        reinterpret_cast<__nv_bfloat16*>(out.data_ptr()), rows, dim, static_cast<float>(eps), stream);
  } else {
    err = LaunchGatePostNormResidual<float>(xf.data_ptr<float>(), g.data_ptr<float>(), w.data_ptr<float>(),
                                            b.data_ptr<float>(), r.data_ptr<float>(), out.data_ptr<float>(), rows,
                                            dim, static_cast<float>(eps), stream);
  }
  TORCH_CHECK(err == cudaSuccess, "GatePostNormResidual kernel: ", cudaGetErrorString(err));
  return out.to(out_dtype);
}

inline at::Tensor LayerNorm1p(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  const int64_t dim = x.size(-1), rows = x.numel() / dim;
  at::Tensor xf = x.to(at::kFloat).contiguous(), w = weight.to(at::kFloat).contiguous(),
             b = bias.to(at::kFloat).contiguous();
  at::Tensor out = at::empty(xf.sizes(), xf.options());
  cudaError_t err = LaunchLayerNorm1p(xf.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(),
                                      out.data_ptr<float>(), rows, dim, static_cast<float>(eps),
                                      at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "LayerNorm1p kernel: ", cudaGetErrorString(err));
  return out;
}

// Rotary on x [..., heads, head_dim] float32 with sin/cos [..., 1, half] that broadcast
// against x[..., :half] and do not vary over the head axis (the DiT's [S, 1, 1, half] table
// for x [S, N, heads, head_dim]). Returns a new tensor, like the CPU twin (kernels/norms.cc).
inline at::Tensor Rotary(const at::Tensor& x, const at::Tensor& sin, const at::Tensor& cos) {
  const int64_t heads = x.size(-2), head_dim = x.size(-1), half = cos.size(-1);
  TORCH_CHECK(2 * half <= head_dim, "Rotary: 2 * half (", 2 * half, ") exceeds head_dim ", head_dim);
  std::vector<int64_t> table_shape(x.sizes().begin(), x.sizes().end());
  table_shape[table_shape.size() - 2] = 1;
  table_shape.back() = half;
  const int64_t tokens = x.numel() / (heads * head_dim);
  at::Tensor s = sin.to(at::kFloat).expand(table_shape).reshape({tokens, half}).contiguous();
  at::Tensor c = cos.to(at::kFloat).expand(table_shape).reshape({tokens, half}).contiguous();
  at::Tensor out = x.to(at::kFloat).contiguous().clone();
  cudaError_t err = LaunchRotary(out.data_ptr<float>(), s.data_ptr<float>(), c.data_ptr<float>(), tokens, heads,
                                 head_dim, half, at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "Rotary kernel: ", cudaGetErrorString(err));
  return out;
}

}  // namespace cuda
}  // namespace magi

#endif  // MAGI_KERNELS_CUDA_FUSED_OPS_CUDA_H_
