#include "kernels/cuda/fused_ops_kernels.h"

namespace magi {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ inline T FromFloat(float v);
template <>
__device__ inline float FromFloat<float>(float v) { return v; }
template <>
__device__ inline __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Block-wide sum of one float per thread (blockDim.x == kThreads).
__device__ float BlockSum(float v, float* shared) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffff, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? shared[threadIdx.x] : 0.0f;
  if (warp == 0) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffff, v, offset);
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  const float total = shared[0];
  __syncthreads();
  return total;
}

template <typename T>
__global__ void GatePostNormResidualKernel(const float* x, const float* gate, const float* weight, const float* bias,
                                           const float* residual, T* out, int64_t dim, float eps) {
  __shared__ float shared[kThreads / 32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * dim;
  const float* gr = gate + row * dim;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) sum += xr[i] * gr[i];
  const float mean = BlockSum(sum, shared) / dim;
  float sq = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    const float d = xr[i] * gr[i] - mean;
    sq += d * d;
  }
  const float rstd = rsqrtf(BlockSum(sq, shared) / dim + eps);
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    const float y = (xr[i] * gr[i] - mean) * rstd * (weight[i] + 1.0f) + bias[i];
    out[row * dim + i] = FromFloat<T>(y + residual[row * dim + i]);
  }
}

__global__ void LayerNorm1pKernel(const float* x, const float* weight, const float* bias, float* out, int64_t dim,
                                  float eps) {
  __shared__ float shared[kThreads / 32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * dim;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) sum += xr[i];
  const float mean = BlockSum(sum, shared) / dim;
  float sq = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) sq += (xr[i] - mean) * (xr[i] - mean);
  const float rstd = rsqrtf(BlockSum(sq, shared) / dim + eps);
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    out[row * dim + i] = (xr[i] - mean) * rstd * (weight[i] + 1.0f) + bias[i];
  }
}

__global__ void RotaryKernel(float* x, const float* sin, const float* cos, int64_t heads, int64_t head_dim,
                             int64_t half) {
  const int64_t token = blockIdx.x;
  for (int64_t idx = threadIdx.x; idx < heads * half; idx += blockDim.x) {
    const int64_t h = idx / half, i = idx % half;
    float* v = x + (token * heads + h) * head_dim;
    const float s = sin[token * half + i], c = cos[token * half + i];
    const float x1 = v[i], x2 = v[i + half];
    v[i] = x1 * c - x2 * s;
    v[i + half] = x1 * s + x2 * c;
  }
}

}  // namespace

template <typename T>
cudaError_t LaunchGatePostNormResidual(const float* x, const float* gate, const float* weight, const float* bias,
                                       const float* residual, T* out, int64_t rows, int64_t dim, float eps,
                                       cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  GatePostNormResidualKernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, gate, weight, bias, residual,
                                                                                       out, dim, eps);
  return cudaGetLastError();
}

template cudaError_t LaunchGatePostNormResidual<float>(const float*, const float*, const float*, const float*,
                                                       const float*, float*, int64_t, int64_t, float, cudaStream_t);
template cudaError_t LaunchGatePostNormResidual<__nv_bfloat16>(const float*, const float*, const float*,
                                                               const float*, const float*, __nv_bfloat16*, int64_t,
                                                               int64_t, float, cudaStream_t);

cudaError_t LaunchLayerNorm1p(const float* x, const float* weight, const float* bias, float* out, int64_t rows,
                              int64_t dim, float eps, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  LayerNorm1pKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, weight, bias, out, dim, eps);
  return cudaGetLastError();
}

cudaError_t LaunchRotary(float* x, const float* sin, const float* cos, int64_t tokens, int64_t heads,
                         int64_t head_dim, int64_t half, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  RotaryKernel<<<static_cast<unsigned>(tokens), kThreads, 0, stream>>>(x, sin, cos, heads, head_dim, half);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace magi
