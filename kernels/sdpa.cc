#include "kernels/sdpa.h"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/version.h>

namespace magi {
namespace {

#define MAGI_SDPA_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

bool IsDefaultScale(double scale, int64_t d) {
  return std::abs(scale * std::sqrt(static_cast<double>(d)) - 1.0) < 1e-12;
}

}  // namespace

at::Tensor ScaledDotProductAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "ScaledDotProductAttention: q, k, v must be [B, H, L, d]");
#if MAGI_SDPA_AT_LEAST(2, 1)
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/false, scale);
#else
  const at::Tensor qs = IsDefaultScale(scale, q.size(-1)) ? q : q * (scale * std::sqrt(static_cast<double>(q.size(-1))));
#if MAGI_SDPA_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(qs, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/false);
#else
  return std::get<0>(at::_scaled_dot_product_attention(qs, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                                       /*need_attn_weights=*/false, /*is_causal=*/false));
#endif
#endif
}

}  // namespace magi
