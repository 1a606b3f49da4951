#include "kernels/attention.h"

#include <ATen/ATen.h>

namespace magi {

at::Tensor RangeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::vector<TokenRange>& q_ranges, const std::vector<TokenRange>& k_ranges,
                          double scale) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "RangeAttention: q, k, v must be [S, heads, d]");
  TORCH_CHECK(q_ranges.size() == k_ranges.size(), "RangeAttention: q_ranges and k_ranges differ in length");
  const int64_t heads = q.size(1), groups = k.size(1);
  TORCH_CHECK(heads % groups == 0, "RangeAttention: heads must be a multiple of K/V groups");
  const int64_t rep = heads / groups;
  at::Tensor out = at::zeros(q.sizes(), q.options());
  // [heads, S, d] float32 views once, sliced per pair.
  at::Tensor qf = q.to(at::kFloat).transpose(0, 1);
  at::Tensor kf = k.to(at::kFloat).transpose(0, 1);
  at::Tensor vf = v.to(at::kFloat).transpose(0, 1);
  if (rep > 1) {
    kf = kf.repeat_interleave(rep, 0);
    vf = vf.repeat_interleave(rep, 0);
  }
  for (size_t i = 0; i < q_ranges.size(); ++i) {
    const auto [q0, q1] = q_ranges[i];
    const auto [k0, k1] = k_ranges[i];
    if (q1 <= q0 || k1 <= k0) continue;
    at::Tensor qs = qf.slice(1, q0, q1);
    at::Tensor ks = kf.slice(1, k0, k1);
    at::Tensor vs = vf.slice(1, k0, k1);
    at::Tensor scores = at::matmul(qs, ks.transpose(1, 2)).mul_(scale);
    at::Tensor probs = at::softmax(scores, -1);
    at::Tensor o = at::matmul(probs, vs);  // [heads, Mq, d]
    out.slice(0, q0, q1).copy_(o.transpose(0, 1));
  }
  return out;
}

}  // namespace magi
