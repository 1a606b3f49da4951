// Range attention: the one attention primitive MAGI-1 needs (spec dit.md §4.2, §8).
//
// For each pair i, the queries q[q_ranges[i]] attend densely (no mask) to the keys
// k[k_ranges[i]]. This covers block-causal self-attention over per-chunk key ranges and
// packed variable-length cross-attention. GQA: query head h uses K/V head h / (Hq / G).
// Softmax and accumulation run in float32; the output has q's dtype. A pair with an empty
// key range produces zeros (flash-attention behaviour). Query ranges must not overlap.
//
// Devices: on CUDA tensors RangeAttention runs RangeAttentionSdpa (LibTorch's flash /
// memory-efficient attention per (query range, key range) pair, as the reference's
// non-Hopper path loops flash-attn over chunks); on CPU the fused float32 kernel of
// kernels/flash_attention_cpu.h (online softmax, vectorised, the same bits on AVX2 and AVX-512
// hosts), or, for shapes it does not take (value head dim not a multiple of 16, mixed dtypes),
// RangeAttentionUnfused; also whenever autograd records (grad mode on and an input requiring
// grad: training), since the fused kernel has no backward. tests/kernels/attention_twin_test.cc compares the SDPA and CPU paths,
// tests/kernels/flash_attention_test.cc the fused kernel with the unfused one.
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

// The unfused float32 CPU path, kept as the fused kernel's reference twin: per pair, blocks of
// query rows go through at::bmm (scores), at::_softmax and at::bmm (values), so one block's
// [rows, keys] score matrix is materialised. Same contract as RangeAttention; any device.
at::Tensor RangeAttentionUnfused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const std::vector<TokenRange>& q_ranges, const std::vector<TokenRange>& k_ranges,
                                 double scale);

// The fused path, callable on any device (the twin test runs it on CPU through ATen's math
// SDPA). Same contract, except the numerics are the fused kernel's: with bf16/fp16 inputs
// flash attention rounds the probabilities to the input dtype before the value product
// (as the reference's flash-attn does), so results differ from the float32 path by about
// the input dtype's precision.
at::Tensor RangeAttentionSdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const std::vector<TokenRange>& q_ranges, const std::vector<TokenRange>& k_ranges,
                              double scale);

}  // namespace magi

#endif  // MAGI_KERNELS_ATTENTION_H_
