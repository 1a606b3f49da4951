// magi-cuda-check: reports what the CUDA side of this build can see: the NCCL library
// version it links, the CUDA runtime, and the devices (none on a CPU-only machine, which is
// reported, not an error). With a device, runs every CUDA kernel of kernels/cuda against a
// float64 host computation of its CPU twin's formula. Exit 1 if the libraries are unusable or
// a kernel fails or disagrees.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/cuda/fused_ops_kernels.h"
#include "parallel/nccl_communicator.h"

namespace {

constexpr int kRows = 5, kDim = 320;  // dim not a multiple of the block size

std::vector<float> Random(size_t n, uint32_t seed, float lo, float hi) {
  std::vector<float> v(n);
  for (auto& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = lo + (hi - lo) * static_cast<float>(seed >> 8) / static_cast<float>(1u << 24);
  }
  return v;
}

// Device buffers freed at scope exit; Upload/Download abort the check on a CUDA error.
struct Device {
  std::vector<void*> held;
  ~Device() {
    for (void* p : held) cudaFree(p);
  }
  template <typename T>
  T* Upload(const std::vector<T>& host) {
    void* p = nullptr;
    if (cudaMalloc(&p, host.size() * sizeof(T)) != cudaSuccess) return nullptr;
    held.push_back(p);
    cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
    return static_cast<T*>(p);
  }
  template <typename T>
  std::vector<T> Download(const T* p, size_t n) {
    std::vector<T> host(n);
    cudaMemcpy(host.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }
};

float Bf16ToFloat(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// max |got - want| / (atol + rtol |want|) <= 1, reported by name.
bool Report(const char* name, const std::vector<float>& got, const std::vector<double>& want, double rtol,
            double atol, cudaError_t err) {
  if (err != cudaSuccess) {
    std::printf("  %s: FAILED (%s)\n", name, cudaGetErrorString(err));
    return false;
  }
  double worst = 0, worst_diff = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(got[i] - want[i]);
    const double r = d / (atol + rtol * std::fabs(want[i]));
    if (!(r <= worst)) {
      worst = r;
      worst_diff = d;
    }
  }
  const bool ok = worst <= 1.0;
  std::printf("  %s: %s (max |diff| %.3g, %.2f of the tolerance)\n", name, ok ? "ok" : "FAILED", worst_diff, worst);
  return ok;
}

// LN over the last dim with gamma = weight + 1, in float64.
std::vector<double> LayerNorm1pRef(const std::vector<double>& x, const std::vector<float>& w,
                                   const std::vector<float>& b, double eps) {
  std::vector<double> out(x.size());
  for (int r = 0; r < kRows; ++r) {
    double mean = 0, var = 0;
    for (int i = 0; i < kDim; ++i) mean += x[r * kDim + i];
    mean /= kDim;
    for (int i = 0; i < kDim; ++i) var += (x[r * kDim + i] - mean) * (x[r * kDim + i] - mean);
    var /= kDim;
    for (int i = 0; i < kDim; ++i) {
      out[r * kDim + i] = (x[r * kDim + i] - mean) / std::sqrt(var + eps) * (w[i] + 1.0) + b[i];
    }
  }
  return out;
}

bool CheckLayerNorm1p() {
  Device d;
  auto x = Random(kRows * kDim, 1, -3, 5), w = Random(kDim, 2, -0.2f, 0.2f), b = Random(kDim, 3, -0.5f, 0.5f);
  float* o = d.Upload(std::vector<float>(x.size()));
  cudaError_t err = magi::cuda::LaunchLayerNorm1p(d.Upload(x), d.Upload(w), d.Upload(b), o, kRows, kDim, 1e-6f,
                                                  nullptr);
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  std::vector<double> xd(x.begin(), x.end());
  return Report("LayerNorm1p fp32", d.Download(o, x.size()), LayerNorm1pRef(xd, w, b, 1e-6), 1e-5, 1e-5, err);
}

bool CheckGatePostNormResidual(bool bf16) {
  Device d;
  auto x = Random(kRows * kDim, 4, -2, 2), g = Random(kRows * kDim, 5, -1, 1), w = Random(kDim, 6, -0.2f, 0.2f),
       b = Random(kDim, 7, -0.5f, 0.5f), res = Random(kRows * kDim, 8, -4, 4);
  std::vector<double> gated(x.size());
  for (size_t i = 0; i < x.size(); ++i) gated[i] = static_cast<double>(x[i]) * g[i];
  std::vector<double> want = LayerNorm1pRef(gated, w, b, 1e-6);
  for (size_t i = 0; i < want.size(); ++i) want[i] += res[i];
  const float *xd = d.Upload(x), *gd = d.Upload(g), *wd = d.Upload(w), *bd = d.Upload(b), *rd = d.Upload(res);
  cudaError_t err;
  std::vector<float> got(x.size());
  if (bf16) {
    auto* o = reinterpret_cast<__nv_bfloat16*>(d.Upload(std::vector<uint16_t>(x.size())));
    err = magi::cuda::LaunchGatePostNormResidual<__nv_bfloat16>(xd, gd, wd, bd, rd, o, kRows, kDim, 1e-6f, nullptr);
    if (err == cudaSuccess) err = cudaDeviceSynchronize();
    auto bits = d.Download(reinterpret_cast<const uint16_t*>(o), x.size());
    for (size_t i = 0; i < got.size(); ++i) got[i] = Bf16ToFloat(bits[i]);
    // One rounding to bf16 at the end: within half a bf16 ulp (2^-8 relative) plus fp32 noise.
    return Report("GatePostNormResidual bf16 out", got, want, 1.0 / 256 + 1e-5, 1e-5, err);
  }
  float* o = d.Upload(std::vector<float>(x.size()));
  err = magi::cuda::LaunchGatePostNormResidual<float>(xd, gd, wd, bd, rd, o, kRows, kDim, 1e-6f, nullptr);
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  return Report("GatePostNormResidual fp32", d.Download(o, x.size()), want, 1e-5, 1e-5, err);
}

bool CheckRotary() {
  Device d;
  const int tokens = 7, heads = 3, head_dim = 64, half = 24;  // 2 * half < head_dim: a pass-through tail
  auto x = Random(static_cast<size_t>(tokens) * heads * head_dim, 9, -2, 2);
  auto sn = Random(static_cast<size_t>(tokens) * half, 10, -1, 1), cs = Random(static_cast<size_t>(tokens) * half, 11, -1, 1);
  std::vector<double> want(x.begin(), x.end());
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < half; ++i) {
        const size_t base = (static_cast<size_t>(t) * heads + h) * head_dim;
        const double x1 = x[base + i], x2 = x[base + i + half], s = sn[t * half + i], c = cs[t * half + i];
        want[base + i] = x1 * c - x2 * s;
        want[base + i + half] = x1 * s + x2 * c;
      }
    }
  }
  float* xd = d.Upload(x);
  cudaError_t err = magi::cuda::LaunchRotary(xd, d.Upload(sn), d.Upload(cs), tokens, heads, head_dim, half, nullptr);
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  return Report("Rotary fp32", d.Download(xd, x.size()), want, 1e-6, 1e-6, err);
}

}  // namespace

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
  // Each kernel on device 0 against a float64 host computation of the CPU twin's formula
  // (kernels/fused_ops.cc), on pseudo-random data: proves the fatbinary matches the GPU and
  // the kernels compute what the CPU path does.
  const bool ok = CheckLayerNorm1p() & CheckGatePostNormResidual(false) & CheckGatePostNormResidual(true) &
                  CheckRotary();
  std::printf("kernel twins: %s\n", ok ? "all within tolerance" : "FAILED");
  return ok ? 0 : 1;
}
