#include "kernels/flash_attention_cpu.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Config.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

// at::parallel_for is inline: compiled without OpenMP against an OpenMP LibTorch it silently
// runs serially (this kernel did, on one thread of two). kernels/CMakeLists.txt adds -fopenmp.
#if AT_PARALLEL_OPENMP && !defined(_OPENMP)
#error "kernels/flash_attention_cpu.cc must be compiled with OpenMP (kernels/CMakeLists.txt links OpenMP::OpenMP_CXX)"
#endif

#include "kernels/flash_attention_kernel.h"

namespace magi {
namespace {

using flash::kLanes;

// Query rows per task: a block's scores (rows x kKeyBlock floats) and output stay in L2, and a
// window has enough tasks to balance two to a few dozen threads.
constexpr int64_t kQueryBlock = 64;

using AttendFn = void (*)(const flash::AttendArgs&);

AttendFn KernelFor(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512: return flash::AttendAvx512;
    case CpuIsa::kAvx2: return flash::AttendAvx2;
    case CpuIsa::kPortable: break;
  }
  return flash::AttendScalar;
}

CpuIsa DetectBest() {
  if (CpuHasIsa(CpuIsa::kAvx512)) return CpuIsa::kAvx512;
  if (CpuHasIsa(CpuIsa::kAvx2)) return CpuIsa::kAvx2;
  return CpuIsa::kPortable;
}

struct Task {
  int64_t pair, head, row0, rows, keys;
};

// Reads element i of a row through the tensor's dtype, as float.
template <class T>
inline float F(const T* p, int64_t i) {
  return static_cast<float>(p[i]);
}

template <class T>
void RunTyped(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::vector<TokenRange>& q_ranges,
              const std::vector<TokenRange>& k_ranges, float scale, AttendFn attend, at::Tensor& out) {
  const int64_t heads = q.size(1), groups = k.size(1), d = q.size(2), dv = v.size(2), sk = k.size(0);
  const int64_t rep = heads / groups;
  const T* qp = q.data_ptr<T>();
  const T* kp = k.data_ptr<T>();
  const T* vp = v.data_ptr<T>();
  T* op = out.data_ptr<T>();
  const int64_t qs0 = q.stride(0), qs1 = q.stride(1), ks0 = k.stride(0), ks1 = k.stride(1), vs0 = v.stride(0),
                vs1 = v.stride(1), os0 = out.stride(0), os1 = out.stride(1);
  const int64_t panels = (sk + kLanes - 1) / kLanes;
  at::Tensor k_panels = at::empty({(panels + flash::kPanelPad) * d * kLanes}, at::kFloat);
  at::Tensor v_rows = at::empty({std::max<int64_t>(sk, 1) * dv}, at::kFloat);
  float* kpan = k_panels.data_ptr<float>();
  float* vrow = v_rows.data_ptr<float>();
  std::fill(kpan + panels * d * kLanes, kpan + (panels + flash::kPanelPad) * d * kLanes, 0.0f);

  const int64_t rows_p = flash::PaddedRows(kQueryBlock);
  const int64_t s_ld = flash::kKeyBlock + kLanes * flash::kPanelPad;
  for (int64_t g = 0; g < groups; ++g) {
    // Tasks of this group, longest key range first (dynamic scheduling then balances).
    std::vector<Task> tasks;
    for (size_t i = 0; i < q_ranges.size(); ++i) {
      const auto [q0, q1] = q_ranges[i];
      const auto [k0, k1] = k_ranges[i];
      if (q1 <= q0 || k1 <= k0) continue;
      for (int64_t h = g * rep; h < (g + 1) * rep; ++h) {
        for (int64_t r = q0; r < q1; r += kQueryBlock) {
          tasks.push_back(Task{static_cast<int64_t>(i), h, r, std::min(kQueryBlock, q1 - r), k1 - k0});
        }
      }
    }
    if (tasks.empty()) continue;
    std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.keys > b.keys; });
    // The group's keys in 16-key panels [d][16] and its values as rows, float32.
    at::parallel_for(0, panels, 16, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        float* dst = kpan + p * d * kLanes;
        for (int64_t lane = 0; lane < kLanes; ++lane) {
          const int64_t key = p * kLanes + lane;
          if (key < sk) {
            const T* src = kp + key * ks0 + g * ks1;
            for (int64_t c = 0; c < d; ++c) dst[c * kLanes + lane] = F(src, c);
          } else {
            for (int64_t c = 0; c < d; ++c) dst[c * kLanes + lane] = 0.0f;
          }
        }
        for (int64_t key = p * kLanes; key < std::min(sk, (p + 1) * kLanes); ++key) {
          const T* src = vp + key * vs0 + g * vs1;
          for (int64_t c = 0; c < dv; ++c) vrow[key * dv + c] = F(src, c);
        }
      }
    });
    std::atomic<int64_t> next{0};
    const int64_t n_tasks = static_cast<int64_t>(tasks.size());
    at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
      std::vector<float> qbuf(rows_p * d, 0.0f), sbuf(rows_p * s_ld), obuf(rows_p * dv), mbuf(rows_p),
          lbuf(rows_p), abuf(rows_p);
      for (int64_t t = next++; t < n_tasks; t = next++) {
        const Task& task = tasks[t];
        for (int64_t r = 0; r < rows_p; ++r) {
          float* dst = qbuf.data() + r * d;
          if (r < task.rows) {
            const T* src = qp + (task.row0 + r) * qs0 + task.head * qs1;
            for (int64_t c = 0; c < d; ++c) dst[c] = F(src, c) * scale;
          } else {
            std::fill(dst, dst + d, 0.0f);
          }
        }
        flash::AttendArgs a;
        a.q = qbuf.data();
        a.rows = task.rows;
        a.d = d;
        a.dv = dv;
        a.k_panels = kpan;
        a.v = vrow;
        a.k0 = k_ranges[task.pair].first;
        a.k1 = k_ranges[task.pair].second;
        a.s = sbuf.data();
        a.m = mbuf.data();
        a.l = lbuf.data();
        a.alpha = abuf.data();
        a.o = obuf.data();
        attend(a);
        for (int64_t r = 0; r < task.rows; ++r) {
          T* dst = op + (task.row0 + r) * os0 + task.head * os1;
          const float* src = obuf.data() + r * dv;
          for (int64_t c = 0; c < dv; ++c) dst[c] = static_cast<T>(src[c]);
        }
      }
    });
  }
}

}  // namespace

bool CpuHasIsa(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuIsa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuIsa::kPortable: return true;
  }
  return false;
}

const char* CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512: return "avx512";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kPortable: return "portable";
  }
  return "?";
}

CpuIsa SelectedCpuIsa() {
  static const CpuIsa isa = [] {
    const char* env = std::getenv("MAGI_CPU_ISA");
    if (env == nullptr || *env == '\0') return DetectBest();
    for (CpuIsa c : {CpuIsa::kAvx512, CpuIsa::kAvx2, CpuIsa::kPortable}) {
      if (std::strcmp(env, CpuIsaName(c)) == 0) {
        TORCH_CHECK(CpuHasIsa(c), "MAGI_CPU_ISA=", env, ": this CPU cannot run that build");
        return c;
      }
    }
    TORCH_CHECK(false, "MAGI_CPU_ISA must be avx512, avx2 or portable, got '", env, "'");
  }();
  return isa;
}

bool FlashAttentionSupports(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  auto fl = [](const at::Tensor& t) {
    return t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf;
  };
  return q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && fl(q) && k.scalar_type() == q.scalar_type() &&
         v.scalar_type() == q.scalar_type() && q.size(2) == k.size(2) && q.size(2) > 0 && v.size(2) > 0 &&
         v.size(2) % kLanes == 0 && q.device().is_cpu();
}

at::Tensor FlashRangeAttentionCpu(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                  const std::vector<TokenRange>& q_ranges, const std::vector<TokenRange>& k_ranges,
                                  double scale, CpuIsa isa) {
  TORCH_CHECK(FlashAttentionSupports(q_in, k_in, v_in),
              "FlashRangeAttentionCpu: needs CPU q [Sq, H, d], k [Sk, G, d], v [Sk, G, dv] of one float dtype with dv "
              "a multiple of 16");
  TORCH_CHECK(q_ranges.size() == k_ranges.size(), "FlashRangeAttentionCpu: q_ranges and k_ranges differ in length");
  TORCH_CHECK(q_in.size(1) % k_in.size(1) == 0, "FlashRangeAttentionCpu: heads must be a multiple of K/V groups");
  TORCH_CHECK(k_in.size(1) == v_in.size(1) && k_in.size(0) == v_in.size(0),
              "FlashRangeAttentionCpu: k and v must have the same tokens and groups");
  TORCH_CHECK(CpuHasIsa(isa), "FlashRangeAttentionCpu: this CPU cannot run the ", CpuIsaName(isa), " build");
  for (size_t i = 0; i < q_ranges.size(); ++i) {
    const auto [q0, q1] = q_ranges[i];
    const auto [k0, k1] = k_ranges[i];
    TORCH_CHECK(q1 <= q0 || (q0 >= 0 && q1 <= q_in.size(0)), "FlashRangeAttentionCpu: q range ", i, " out of bounds");
    TORCH_CHECK(k1 <= k0 || (k0 >= 0 && k1 <= k_in.size(0)), "FlashRangeAttentionCpu: k range ", i, " out of bounds");
  }
  // Rows only need their last dim contiguous.
  auto rows = [](const at::Tensor& t) { return t.stride(2) == 1 ? t : t.contiguous(); };
  const at::Tensor q = rows(q_in), k = rows(k_in), v = rows(v_in);
  at::Tensor out = at::zeros({q.size(0), q.size(1), v.size(2)}, q.options());
  // The unfused path multiplies q by the scale in float32 (one rounding); so does this one.
  const float s = static_cast<float>(scale);
  const AttendFn attend = KernelFor(isa);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, q.scalar_type(), "FlashRangeAttentionCpu",
                                  [&] { RunTyped<scalar_t>(q, k, v, q_ranges, k_ranges, s, attend, out); });
  return out;
}

}  // namespace magi
