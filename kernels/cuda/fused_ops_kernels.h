// Raw CUDA launchers of the fused DiT ops: device pointers in, no ATen, so they compile
// with nvcc alone. Row-major [rows, dim]; one thread block per row; float32 math.
#ifndef MAGI_KERNELS_CUDA_FUSED_OPS_KERNELS_H_
#define MAGI_KERNELS_CUDA_FUSED_OPS_KERNELS_H_

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace magi {
namespace cuda {

// out[r] = LN1p(x[r] * gate[r]) + residual[r], all float32 until the sum is rounded to T
// (float or __nv_bfloat16), as the CPU twin does.
template <typename T>
cudaError_t LaunchGatePostNormResidual(const float* x, const float* gate, const float* weight, const float* bias,
                                       const float* residual, T* out, int64_t rows, int64_t dim, float eps,
                                       cudaStream_t stream);

// out[r] = LN1p(x[r]) (float32 in and out).
cudaError_t LaunchLayerNorm1p(const float* x, const float* weight, const float* bias, float* out, int64_t rows,
                              int64_t dim, float eps, cudaStream_t stream);

// In-place non-interleaved partial rotary on x [tokens, heads, head_dim] (float32) with
// sin/cos [tokens, half]: pairs (i, i + half) for i < half; dims >= 2 * half untouched.
cudaError_t LaunchRotary(float* x, const float* sin, const float* cos, int64_t tokens, int64_t heads,
                         int64_t head_dim, int64_t half, cudaStream_t stream);

}  // namespace cuda
}  // namespace magi

#endif  // MAGI_KERNELS_CUDA_FUSED_OPS_KERNELS_H_
