#include "kernels/attention.h"

#include <algorithm>
#include <cstdlib>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "kernels/flash_attention_cpu.h"
#include "kernels/sdpa.h"

namespace magi {
namespace {

// Query rows per block: keeps one block's score matrix near cache size, so the softmax
// pass (memory-bound) does not stream the whole [Mq, Mk] matrix through DRAM.
int64_t BlockRows() {
  static const int64_t rows = [] {
    const char* env = std::getenv("MAGI_ATTENTION_BLOCK_ROWS");
    return env != nullptr ? std::max<int64_t>(1, std::atoll(env)) : int64_t{512};
  }();
  return rows;
}

void CheckArgs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::vector<TokenRange>& q_ranges,
               const std::vector<TokenRange>& k_ranges) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "RangeAttention: q, k, v must be [S, heads, d]");
  TORCH_CHECK(q_ranges.size() == k_ranges.size(), "RangeAttention: q_ranges and k_ranges differ in length");
  TORCH_CHECK(q.size(1) % k.size(1) == 0, "RangeAttention: heads must be a multiple of K/V groups");
  TORCH_CHECK(k.size(1) == v.size(1) && k.size(0) == v.size(0), "RangeAttention: k and v must have the same tokens and groups");
}

}  // namespace

at::Tensor RangeAttentionSdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const std::vector<TokenRange>& q_ranges, const std::vector<TokenRange>& k_ranges,
                              double scale) {
  CheckArgs(q, k, v, q_ranges, k_ranges);
  const int64_t heads = q.size(1), groups = k.size(1), d = q.size(2), dv = v.size(2);
  const int64_t rep = heads / groups;
  at::Tensor out = at::zeros({q.size(0), heads, dv}, q.options());
  for (size_t i = 0; i < q_ranges.size(); ++i) {
    const auto [q0, q1] = q_ranges[i];
    const auto [k0, k1] = k_ranges[i];
    if (q1 <= q0 || k1 <= k0) continue;
    const int64_t mq = q1 - q0, mk = k1 - k0;
    // [M, heads, d] -> [1, heads, M, d]; GQA by expanding each K/V group over its rep query
    // heads (the fused kernels of older LibTorch take equal head counts).
    auto kv_heads = [&](const at::Tensor& t, int64_t width) {
      at::Tensor s = t.narrow(0, k0, mk).to(q.scalar_type());
      if (rep > 1) s = s.unsqueeze(2).expand({mk, groups, rep, width}).reshape({mk, heads, width});
      return s.transpose(0, 1).unsqueeze(0);
    };
    at::Tensor qs = q.narrow(0, q0, mq).transpose(0, 1).unsqueeze(0);
    at::Tensor o = ScaledDotProductAttention(qs, kv_heads(k, d), kv_heads(v, dv), scale);  // [1, heads, Mq, dv]
    out.narrow(0, q0, mq).copy_(o.squeeze(0).transpose(0, 1));
  }
  return out;
}

at::Tensor RangeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::vector<TokenRange>& q_ranges, const std::vector<TokenRange>& k_ranges,
                          double scale) {
  if (q.is_cuda()) return RangeAttentionSdpa(q, k, v, q_ranges, k_ranges, scale);
  CheckArgs(q, k, v, q_ranges, k_ranges);
  // Training: the fused kernel has no backward; the unfused twin is made of ATen ops that do.
  const bool records_grad =
      at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (!records_grad && FlashAttentionSupports(q, k, v)) {
    return FlashRangeAttentionCpu(q, k, v, q_ranges, k_ranges, scale, SelectedCpuIsa());
  }
  return RangeAttentionUnfused(q, k, v, q_ranges, k_ranges, scale);
}

at::Tensor RangeAttentionUnfused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const std::vector<TokenRange>& q_ranges, const std::vector<TokenRange>& k_ranges,
                                 double scale) {
  CheckArgs(q, k, v, q_ranges, k_ranges);
  const int64_t heads = q.size(1), groups = k.size(1), d = q.size(2), dv = v.size(2);
  const int64_t rep = heads / groups;
  at::Tensor out = at::zeros({q.size(0), heads, dv}, q.options());
  // GQA without copying K/V per head: the rep query heads of a group share one GEMM against
  // that group's keys ([G, rep * Mq, d] x [G, d, Mk]).
  at::Tensor kf = k.to(at::kFloat).permute({1, 2, 0});  // [G, d, Sk]
  at::Tensor vf = v.to(at::kFloat).permute({1, 0, 2});  // [G, Sk, dv]
  const int64_t block = BlockRows();
  for (size_t i = 0; i < q_ranges.size(); ++i) {
    const auto [q0, q1] = q_ranges[i];
    const auto [k0, k1] = k_ranges[i];
    if (q1 <= q0 || k1 <= k0) continue;
    const int64_t mq = q1 - q0;
    at::Tensor ks = kf.narrow(2, k0, k1 - k0).contiguous();
    at::Tensor vs = vf.narrow(1, k0, k1 - k0).contiguous();
    // [Mq, G, rep, d] -> [G, Mq * rep, d], pre-scaled; a block of query rows is then a
    // strided batch of contiguous matrices (no copy).
    at::Tensor qs = (q.narrow(0, q0, mq).to(at::kFloat) * scale)
                        .view({mq, groups, rep * d})
                        .permute({1, 0, 2})
                        .contiguous()
                        .view({groups, mq * rep, d});
    at::Tensor og = at::empty({groups, mq * rep, dv}, q.options().dtype(at::kFloat));
    const int64_t rows = mq * rep;
    for (int64_t b0 = 0; b0 < rows; b0 += block) {
      const int64_t nb = std::min(block, rows - b0);
      at::Tensor scores = at::bmm(qs.narrow(1, b0, nb), ks);  // [G, nb, Mk]
      at::Tensor probs = at::_softmax(scores, -1, false);
      at::Tensor dst = og.narrow(1, b0, nb);
      if (probs.requires_grad() || vs.requires_grad()) {
        dst.copy_(at::bmm(probs, vs));  // out= variants do not record gradients
      } else {
        at::bmm_out(dst, probs, vs);
      }
    }
    // [G, Mq, rep, dv] -> [Mq, G, rep, dv] = [Mq, heads, dv]
    out.narrow(0, q0, mq).copy_(og.view({groups, mq, rep, dv}).permute({1, 0, 2, 3}).reshape({mq, heads, dv}));
  }
  return out;
}

}  // namespace magi
