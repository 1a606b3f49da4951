// AVX2 + FMA build of the fused attention kernel (flash_attention_kernel.h): a logical vector is
// two ymm. Compiled with -mavx2 -mfma -ffp-contract=off (kernels/CMakeLists.txt); called only
// where the CPU has AVX2 and FMA.
#include <immintrin.h>

#define MAGI_FLASH_NAMESPACE avx2
#include "kernels/flash_attention_kernel_impl.h"

namespace magi {
namespace flash {
namespace avx2 {
namespace {

struct Isa {
  struct V {
    __m256 lo, hi;
  };
  static constexpr int kRows = 6, kScoreCols = 1, kPvCols = 1;
  static V Zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static V Load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static void Store(float* p, V v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
  }
  static V Bcast(float f) { return {_mm256_set1_ps(f), _mm256_set1_ps(f)}; }
  static V Add(V a, V b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
  static V Sub(V a, V b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
  static V Mul(V a, V b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
  static V Div(V a, V b) { return {_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
  static V Max(V a, V b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
  static V Min(V a, V b) { return {_mm256_min_ps(a.lo, b.lo), _mm256_min_ps(a.hi, b.hi)}; }
  static V Fma(V a, V b, V c) { return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
  static V Round(V a) {
    constexpr int kMode = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    return {_mm256_round_ps(a.lo, kMode), _mm256_round_ps(a.hi, kMode)};
  }
  static __m256 Pow2Half(__m256 n) {
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_castsi256_ps(e);
  }
  static V Pow2(V n) { return {Pow2Half(n.lo), Pow2Half(n.hi)}; }
};

}  // namespace
}  // namespace avx2

void AttendAvx2(const AttendArgs& a) { avx2::Attend<avx2::Isa>(a); }

}  // namespace flash
}  // namespace magi
