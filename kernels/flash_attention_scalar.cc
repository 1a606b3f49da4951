// Portable build of the fused attention kernel (flash_attention_kernel.h) for CPUs without AVX2
// and FMA: 16 floats per logical vector, fused multiply-adds through fmaf (correctly rounded,
// so the results equal the vector builds'; slow where the CPU has no FMA instruction).
// Compiled with -ffp-contract=off (kernels/CMakeLists.txt).
#define MAGI_FLASH_NAMESPACE scalar
#include "kernels/flash_attention_kernel_impl.h"

namespace magi {
namespace flash {
namespace scalar {
namespace {

struct Isa {
  struct V {
    float x[kLanes];
  };
  static constexpr int kRows = 3, kScoreCols = 1, kPvCols = 1;
  template <class F>
  static V Map(F f) {
    V r;
    for (int i = 0; i < kLanes; ++i) r.x[i] = f(i);
    return r;
  }
  static V Zero() { return Bcast(0.0f); }
  static V Load(const float* p) { return Map([&](int i) { return p[i]; }); }
  static void Store(float* p, V v) {
    for (int i = 0; i < kLanes; ++i) p[i] = v.x[i];
  }
  static V Bcast(float f) { return Map([&](int) { return f; }); }
  static V Add(V a, V b) { return Map([&](int i) { return a.x[i] + b.x[i]; }); }
  static V Sub(V a, V b) { return Map([&](int i) { return a.x[i] - b.x[i]; }); }
  static V Mul(V a, V b) { return Map([&](int i) { return a.x[i] * b.x[i]; }); }
  static V Div(V a, V b) { return Map([&](int i) { return a.x[i] / b.x[i]; }); }
  // The vector instructions' semantics: the second operand when unordered or equal.
  static V Max(V a, V b) { return Map([&](int i) { return a.x[i] > b.x[i] ? a.x[i] : b.x[i]; }); }
  static V Min(V a, V b) { return Map([&](int i) { return a.x[i] < b.x[i] ? a.x[i] : b.x[i]; }); }
  static V Fma(V a, V b, V c) { return Map([&](int i) { return __builtin_fmaf(a.x[i], b.x[i], c.x[i]); }); }
  static V Round(V a) { return Map([&](int i) { return __builtin_nearbyintf(a.x[i]); }); }
  static V Pow2(V n) {
    return Map([&](int i) {
      const int32_t bits = (static_cast<int32_t>(n.x[i]) + 127) << 23;
      float f;
      __builtin_memcpy(&f, &bits, sizeof f);
      return f;
    });
  }
};

}  // namespace
}  // namespace scalar

void AttendScalar(const AttendArgs& a) { scalar::Attend<scalar::Isa>(a); }

}  // namespace flash
}  // namespace magi
