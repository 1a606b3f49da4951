// AVX-512 build of the fused attention kernel (flash_attention_kernel.h): one zmm per logical
// vector. Compiled with -mavx512f -mfma -ffp-contract=off (kernels/CMakeLists.txt); called only
// where the CPU has AVX-512F and FMA.
#include <immintrin.h>

#define MAGI_FLASH_NAMESPACE avx512
#include "kernels/flash_attention_kernel_impl.h"

namespace magi {
namespace flash {
namespace avx512 {
namespace {

struct Isa {
  struct V {
    __m512 x;
  };
  static constexpr int kRows = 6, kScoreCols = 4, kPvCols = 4;
  static V Zero() { return {_mm512_setzero_ps()}; }
  static V Load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static void Store(float* p, V v) { _mm512_storeu_ps(p, v.x); }
  static V Bcast(float f) { return {_mm512_set1_ps(f)}; }
  static V Add(V a, V b) { return {_mm512_add_ps(a.x, b.x)}; }
  static V Sub(V a, V b) { return {_mm512_sub_ps(a.x, b.x)}; }
  static V Mul(V a, V b) { return {_mm512_mul_ps(a.x, b.x)}; }
  static V Div(V a, V b) { return {_mm512_div_ps(a.x, b.x)}; }
  static V Max(V a, V b) { return {_mm512_max_ps(a.x, b.x)}; }  // a > b ? a : b
  static V Min(V a, V b) { return {_mm512_min_ps(a.x, b.x)}; }  // a < b ? a : b
  static V Fma(V a, V b, V c) { return {_mm512_fmadd_ps(a.x, b.x, c.x)}; }
  static V Round(V a) { return {_mm512_roundscale_ps(a.x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  static V Pow2(V n) {
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n.x), _mm512_set1_epi32(127)), 23);
    return {_mm512_castsi512_ps(e)};
  }
};

}  // namespace
}  // namespace avx512

void AttendAvx512(const AttendArgs& a) { avx512::Attend<avx512::Isa>(a); }

}  // namespace flash
}  // namespace magi
