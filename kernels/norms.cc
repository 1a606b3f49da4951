#include "kernels/norms.h"

#include <ATen/ATen.h>

#if defined(MAGI_HAVE_CUDA_KERNELS)
#include "kernels/cuda/fused_ops_cuda.h"
#endif

namespace magi {

at::Tensor LayerNormF32(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps,
                        bool one_plus) {
  at::Tensor w = one_plus ? (weight + 1) : weight;
  return at::layer_norm(x.to(at::kFloat), {x.size(-1)}, w.to(at::kFloat), bias.to(at::kFloat), eps);
}

at::Tensor ApplyRotary(const at::Tensor& x, const at::Tensor& sin, const at::Tensor& cos) {
#if defined(MAGI_HAVE_CUDA_KERNELS)
  // The CUDA kernel takes one table row per token shared by all heads: the DiT's layout.
  if (x.is_cuda() && x.scalar_type() == at::kFloat && x.dim() >= 2 && sin.dim() <= x.dim() &&
      (sin.dim() < 2 || sin.size(-2) == 1) && (cos.dim() < 2 || cos.size(-2) == 1)) {
    return cuda::Rotary(x, sin, cos);
  }
#endif
  const int64_t half = cos.size(-1);
  const int64_t rd = 2 * half;
  const at::Tensor& c = cos;
  const at::Tensor& s = sin;
  at::Tensor x1 = x.narrow(-1, 0, half);
  at::Tensor x2 = x.narrow(-1, half, half);
  at::Tensor r1 = x1 * c - x2 * s;
  at::Tensor r2 = x1 * s + x2 * c;
  if (rd == x.size(-1)) return at::cat({r1, r2}, -1);
  return at::cat({r1, r2, x.narrow(-1, rd, x.size(-1) - rd)}, -1);
}

}  // namespace magi
