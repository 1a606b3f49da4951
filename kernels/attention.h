// Range attention: the one attention primitive MAGI-1 needs (spec dit.md §4.2, §8).
//
// For each pair i, the queries q[q_ranges[i]] attend densely (no mask) to the keys
// k[k_ranges[i]]. This covers block-causal self-attention over per-chunk key ranges and
// packed variable-length cross-attention. GQA: query head h uses K/V head h / (Hq / G).
// Softmax and accumulation run in float32; the output has q's dtype. A pair with an empty
// key range produces zeros (flash-attention behaviour). Query ranges must not overlap.
#ifndef MAGI_KERNELS_ATTENTION_H_
#define MAGI_KERNELS_ATTENTION_H_

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace magi {

using TokenRange = std::pair<int64_t, int64_t>;  // [begin, end)

// q [Sq, Hq, d], k and v [Sk, G, d] -> [Sq, Hq, d]. Rows of q outside every q range are 0.
at::Tensor RangeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::vector<TokenRange>& q_ranges, const std::vector<TokenRange>& k_ranges,
                          double scale);

}  // namespace magi

#endif  // MAGI_KERNELS_ATTENTION_H_
