// The fused CPU range attention: what RangeAttention (kernels/attention.h) runs on CPU tensors.
//
// Same contract as RangeAttention. Per (query range, key range) pair, each block of query rows
// of each head streams the pair's keys in blocks of flash::kKeyBlock with an online softmax
// (flash-attention style): no score matrix beyond one block per thread, GQA by reading the
// group's K/V (converted once per call to float32 and, for K, transposed into 16-key panels; one
// group at a time, so the extra memory is 2 * keys * head_dim floats), float32 throughout,
// output rounded once to q's dtype (bf16/fp16 inputs are upcast, as the unfused path does).
// Work is split over (pair, head, query block) and balanced dynamically across at::parallel_for's
// threads.
//
// Numerics do not depend on the host: the AVX-512, AVX2+FMA and portable builds of the inner
// kernel compute the same sequence of float32 operations (kernels/flash_attention_kernel.h) and
// give bitwise-identical outputs, tested by tests/kernels/flash_attention_test.cc. Against the
// unfused float32 path (RangeAttentionUnfused) results differ by float32 rounding (the order
// of the sums and the exp implementation), ~1e-6 relative.
//
// Thread safety: a pure function; it uses ATen's intra-op thread pool.
#ifndef MAGI_KERNELS_FLASH_ATTENTION_CPU_H_
#define MAGI_KERNELS_FLASH_ATTENTION_CPU_H_

#include <vector>

#include <ATen/core/Tensor.h>

#include "kernels/attention.h"

namespace magi {

enum class CpuIsa { kPortable, kAvx2, kAvx512 };

// Whether this CPU (and OS) runs the given build of the kernel.
bool CpuHasIsa(CpuIsa isa);
// The build RangeAttention uses: the widest this CPU runs, or MAGI_CPU_ISA=avx512|avx2|portable
// when set (read once; a build the CPU cannot run is refused with an exception).
CpuIsa SelectedCpuIsa();
const char* CpuIsaName(CpuIsa isa);

// Whether the fused kernel takes these shapes: value head dim a multiple of 16, float dtypes.
bool FlashAttentionSupports(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// The fused attention with an explicit kernel build (tests and benchmarks compare builds).
// Throws (TORCH_CHECK) on shapes FlashAttentionSupports rejects or an isa the CPU lacks.
at::Tensor FlashRangeAttentionCpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const std::vector<TokenRange>& q_ranges, const std::vector<TokenRange>& k_ranges,
                                  double scale, CpuIsa isa);

}  // namespace magi

#endif  // MAGI_KERNELS_FLASH_ATTENTION_CPU_H_
