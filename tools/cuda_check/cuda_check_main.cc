// magi-cuda-check: reports what the CUDA side of this build can see: the NCCL library
// version it links, the CUDA runtime, and the devices (none on a CPU-only machine, which is
// reported, not an error). Exit 1 only if the libraries themselves are unusable.
#include <cuda_runtime.h>

#include <cstdio>

#include "kernels/cuda/fused_ops_kernels.h"
#include "parallel/nccl_communicator.h"

int main() {
  int runtime = 0;
  if (cudaRuntimeGetVersion(&runtime) != cudaSuccess) {
    std::fprintf(stderr, "magi-cuda-check: the CUDA runtime library is unusable\n");
    return 1;
  }
  std::printf("%s, CUDA runtime %d.%d\n", magi::NcclVersionString().c_str(), runtime / 1000, (runtime % 1000) / 10);
  int devices = 0;
  cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess) {
    std::printf("no usable CUDA device (%s): the CPU path (Gloo) is what runs here\n", cudaGetErrorString(err));
    return 0;
  }
  std::printf("%d CUDA device(s)\n", devices);
  for (int d = 0; d < devices; ++d) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, d) == cudaSuccess) {
      std::printf("  device %d: %s, sm_%d%d, %.1f GiB\n", d, p.name, p.major, p.minor, p.totalGlobalMem / 1073741824.0);
    }
  }
  // One kernel launch on device 0 proves the fatbinary matches the GPU.
  float *x = nullptr, *w = nullptr, *b = nullptr, *o = nullptr;
  const int dim = 64;
  cudaMalloc(&x, dim * sizeof(float));
  cudaMalloc(&w, dim * sizeof(float));
  cudaMalloc(&b, dim * sizeof(float));
  cudaMalloc(&o, dim * sizeof(float));
  cudaMemset(x, 0, dim * sizeof(float));
  cudaMemset(w, 0, dim * sizeof(float));
  cudaMemset(b, 0, dim * sizeof(float));
  err = magi::cuda::LaunchLayerNorm1p(x, w, b, o, 1, dim, 1e-6f, nullptr);
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  std::printf("LayerNorm1p kernel: %s\n", err == cudaSuccess ? "ok" : cudaGetErrorString(err));
  cudaFree(x);
  cudaFree(w);
  cudaFree(b);
  cudaFree(o);
  return err == cudaSuccess ? 0 : 1;
}
