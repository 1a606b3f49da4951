// Linear, conv3d, matmul (and GELU) with one precision rule on every device and host CPU:
// a bf16/fp16 product is the exact sum of the exact products, rounded once to the output
// dtype. That is what oneDNN's bf16 GEMM/conv and CUDA tensor cores compute (they accumulate
// in float32, which can differ from the exact sum only where float32's own summation error
// crosses a bf16 rounding boundary), and what the reference's golden vectors were made with.
//
// Why this owner exists (measured, notes in tests/kernels/gemm_test.cc): LibTorch 1.13 picks
// its bf16 CPU kernels by the host's ISA. With AVX-512 (bf16 via oneDNN) conv3d and GELU
// accumulate/evaluate in float32 and round once; without it, ATen's native slow_conv3d
// accumulates bf16 partial sums (on a 3x3x3 conv, 14442 of 16384 outputs differed from the
// float32-then-round result, by up to 0.14) and its native bf16 GELU rounds differently, so the
// VAE's bf16 golden cases failed on AVX2-only hosts. On CPU these functions compute bf16/fp16
// in float64 and round once: float64 makes the rounded result independent of the summation
// order, hence of OpenBLAS's per-core kernels and oneDNN's ISA. On CUDA they call the native
// op (tensor cores accumulate in float32).
//
// Dtypes: the result has the promoted dtype of the inputs (all bf16 -> bf16; bf16 weight with
// a float32 activation -> float32, computed in float32). Every GEMM/conv of the DiT, VAE and
// T5 goes through here.
#ifndef MAGI_KERNELS_GEMM_H_
#define MAGI_KERNELS_GEMM_H_

#include <ATen/core/Tensor.h>

namespace magi {
namespace gemm {

// y = x W^T (+ b). x [..., in], w [out, in], b [out] or undefined.
at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = at::Tensor());

// F.conv3d with the given stride and zero padding (per dim). b may be undefined.
at::Tensor Conv3d(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, at::IntArrayRef stride,
                  at::IntArrayRef padding = {0, 0, 0});

// at::matmul with the same rule (batched shapes as at::matmul).
at::Tensor Matmul(const at::Tensor& a, const at::Tensor& b);

// Exact (erf) GELU. bf16/fp16 on CPU: computed in float64 and rounded once, because ATen's
// own bf16 GELU is oneDNN's on AVX-512 hosts and a native kernel elsewhere, with different
// roundings.
at::Tensor Gelu(const at::Tensor& x);

}  // namespace gemm
}  // namespace magi

#endif  // MAGI_KERNELS_GEMM_H_
