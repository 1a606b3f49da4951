#include "kernels/fused_ops.h"

#include <ATen/ATen.h>

#include "kernels/norms.h"
#if defined(MAGI_HAVE_CUDA_KERNELS)
#include "kernels/cuda/fused_ops_cuda.h"
#endif

namespace magi {

bool HaveCudaKernels() {
#if defined(MAGI_HAVE_CUDA_KERNELS)
  return true;
#else
  return false;
#endif
}

at::Tensor GatePostNormResidual(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& weight,
                                const at::Tensor& bias, const at::Tensor& residual, double eps,
                                at::ScalarType out_dtype) {
#if defined(MAGI_HAVE_CUDA_KERNELS)
  if (x.is_cuda()) return cuda::GatePostNormResidual(x, gate, weight, bias, residual, eps, out_dtype);
#endif
  at::Tensor gated = x.to(at::kFloat) * gate.to(at::kFloat);
  return (LayerNormF32(gated, weight, bias, eps, /*one_plus=*/true) + residual.to(at::kFloat)).to(out_dtype);
}

at::Tensor LayerNorm1p(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
#if defined(MAGI_HAVE_CUDA_KERNELS)
  if (x.is_cuda()) return cuda::LayerNorm1p(x, weight, bias, eps);
#endif
  return LayerNormF32(x, weight, bias, eps, /*one_plus=*/true);
}

}  // namespace magi
