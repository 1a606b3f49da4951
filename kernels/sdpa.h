// One call of LibTorch's fused scaled-dot-product attention, whatever the LibTorch version:
// 1.13 has only `at::_scaled_dot_product_attention` (returns a tuple, no scale argument),
// 2.0 has `at::scaled_dot_product_attention` without a scale, 2.1+ takes the scale. On CUDA
// this is where flash / memory-efficient attention come from (LibTorch picks the kernel by
// dtype, head size and GPU); on CPU it is ATen's math path.
//
// Thread safety: a pure function.
#ifndef MAGI_KERNELS_SDPA_H_
#define MAGI_KERNELS_SDPA_H_

#include <ATen/core/Tensor.h>

namespace magi {

// q [B, H, Lq, d], k and v [B, H, Lk, d] (same dtype and device) -> [B, H, Lq, d]: softmax(q
// k^T * scale) v, no mask, no dropout. Where the LibTorch cannot take `scale` and it differs
// from 1/sqrt(d), q is multiplied by scale * sqrt(d) first (one extra rounding in q's dtype).
at::Tensor ScaledDotProductAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

}  // namespace magi

#endif  // MAGI_KERNELS_SDPA_H_
