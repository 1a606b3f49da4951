// The body of the fused CPU attention kernel (contract in flash_attention_kernel.h), written once
// against a logical 16-float vector `Isa::V`. Each flash_attention_<isa>.cc defines
// MAGI_FLASH_NAMESPACE and an `Isa` struct, includes this file, and exports one Attend<isa>.
// Include nothing here beyond flash_attention_kernel.h (see that header on why).
//
// Isa provides: V; Zero, Load, Store, Bcast, Add, Sub, Mul, Div, Max, Min, Fma(a, b, c) = a*b+c
// rounded once, Round (to nearest even), Pow2(n) for integral n in [-126, 127]; and the tile
// sizes kRows (divides kRowPad), kScoreCols and kPvCols (in logical vectors).
#ifndef MAGI_FLASH_NAMESPACE
#error "define MAGI_FLASH_NAMESPACE before including flash_attention_kernel_impl.h"
#endif

#include "kernels/flash_attention_kernel.h"

namespace magi {
namespace flash {
namespace MAGI_FLASH_NAMESPACE {
namespace {

constexpr float kInf = __builtin_inff();

inline int64_t MinI(int64_t a, int64_t b) { return a < b ? a : b; }

// exp(x), Cephes' single-precision polynomial, lane-wise. Inputs are clamped to [-87.34, 88]
// (exp(-87.34) ~ 1.2e-38, the smallest normal; softmax arguments are <= 0 and below -87 add
// nothing a float can hold next to the row maximum, which contributes exp(0) = 1).
template <class I>
inline typename I::V Exp(typename I::V x) {
  using V = typename I::V;
  x = I::Min(x, I::Bcast(88.0f));
  x = I::Max(x, I::Bcast(-87.33654f));
  const V n = I::Round(I::Mul(x, I::Bcast(1.44269504088896341f)));
  V r = I::Fma(n, I::Bcast(-0.693359375f), x);
  r = I::Fma(n, I::Bcast(2.12194440e-4f), r);
  V p = I::Bcast(1.9875691500E-4f);
  p = I::Fma(p, r, I::Bcast(1.3981999507E-3f));
  p = I::Fma(p, r, I::Bcast(8.3334519073E-3f));
  p = I::Fma(p, r, I::Bcast(4.1665795894E-2f));
  p = I::Fma(p, r, I::Bcast(1.6666665459E-1f));
  p = I::Fma(p, r, I::Bcast(5.0000001201E-1f));
  V y = I::Fma(p, I::Mul(r, r), r);
  y = I::Add(y, I::Bcast(1.0f));
  return I::Mul(y, I::Pow2(n));
}

// The 16 lanes of v folded in a fixed tree: (0+8), (1+9), ... then halves again.
template <class I>
inline float FoldSum(typename I::V v) {
  float t[kLanes];
  I::Store(t, v);
  for (int w = kLanes / 2; w >= 1; w /= 2) {
    for (int i = 0; i < w; ++i) t[i] = t[i] + t[i + w];
  }
  return t[0];
}

template <class I>
inline float FoldMax(typename I::V v) {
  float t[kLanes];
  I::Store(t, v);
  float m = t[0];
  for (int i = 1; i < kLanes; ++i) m = t[i] > m ? t[i] : m;
  return m;
}

// s[r][16c + lane] = sum_k q[r][k] * panel_c[k][lane], one FMA chain over k = 0..d-1 per score.
template <class I, int R, int C>
inline void ScoreTile(const float* q, int64_t d, const float* panels, float* s, int64_t s_ld) {
  using V = typename I::V;
  V acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c] = I::Zero();
  }
  for (int64_t k = 0; k < d; ++k) {
    V kv[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) kv[c] = I::Load(panels + c * d * kLanes + k * kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const V b = I::Bcast(q[r * d + k]);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[r][c] = I::Fma(b, kv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) I::Store(s + r * s_ld + c * kLanes, acc[r][c]);
  }
}

// o[r][16c + lane] += sum_{j in [j0, j1)} p[r][j] * v[j][16c + lane], an FMA chain over j in order.
template <class I, int R, int C>
inline void PvTile(const float* p, int64_t p_ld, const float* v, int64_t dv, int64_t j0, int64_t j1, float* o) {
  using V = typename I::V;
  V acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c] = I::Load(o + r * dv + c * kLanes);
  }
  for (int64_t j = j0; j < j1; ++j) {
    V vv[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) vv[c] = I::Load(v + j * dv + c * kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const V b = I::Bcast(p[r * p_ld + j]);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[r][c] = I::Fma(b, vv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) I::Store(o + r * dv + c * kLanes, acc[r][c]);
  }
}

// One PV column strip of width cols (<= kPvCols) vectors; the width is a template argument so
// the accumulators stay in registers.
template <class I, int C>
inline void PvStrip(const AttendArgs& a, const float* v, int64_t s_ld, int64_t rows_p, int64_t j0, int64_t j1,
                    int64_t c0) {
  for (int64_t r = 0; r < rows_p; r += I::kRows) {
    PvTile<I, I::kRows, C>(a.s + r * s_ld, s_ld, v + c0 * kLanes, a.dv, j0, j1, a.o + r * a.dv + c0 * kLanes);
  }
}

template <class I>
void Attend(const AttendArgs& a) {
  using V = typename I::V;
  static_assert(kRowPad % I::kRows == 0, "tile height must divide kRowPad");
  static_assert(I::kScoreCols <= kPanelPad, "score tiles may not read past the panel padding");
  const int64_t rows_p = PaddedRows(a.rows), d = a.d, dv = a.dv, nvo = a.dv / kLanes;
  const int64_t s_ld = kKeyBlock + kLanes * kPanelPad;
  for (int64_t r = 0; r < rows_p; ++r) {
    a.m[r] = -kInf;
    a.l[r] = 0.0f;
    for (int64_t c = 0; c < nvo; ++c) I::Store(a.o + r * dv + c * kLanes, I::Zero());
  }
  for (int64_t kb = a.k0; kb < a.k1;) {
    const int64_t ke = MinI(a.k1, (kb / kKeyBlock + 1) * kKeyBlock);
    const int64_t p0 = kb / kLanes, np = (ke + kLanes - 1) / kLanes - p0;
    const int64_t col0 = kb - p0 * kLanes, col1 = ke - p0 * kLanes, ncol = np * kLanes;
    // Scores of every (padded) row against the block's panels.
    for (int64_t pi = 0; pi < np; pi += I::kScoreCols) {
      const float* panels = a.k_panels + (p0 + pi) * d * kLanes;
      for (int64_t r = 0; r < rows_p; r += I::kRows) {
        ScoreTile<I, I::kRows, I::kScoreCols>(a.q + r * d, d, panels, a.s + r * s_ld + pi * kLanes, s_ld);
      }
    }
    // Online softmax: new running max, probabilities in place, rescale of the running sum and
    // output.
    for (int64_t r = 0; r < rows_p; ++r) {
      float* sr = a.s + r * s_ld;
      for (int64_t j = 0; j < col0; ++j) sr[j] = -kInf;
      for (int64_t j = col1; j < ncol; ++j) sr[j] = -kInf;
      V mx = I::Bcast(-kInf);
      for (int64_t c = 0; c < np; ++c) mx = I::Max(mx, I::Load(sr + c * kLanes));
      const float block_max = FoldMax<I>(mx);
      const float m_old = a.m[r];
      const float m_new = block_max > m_old ? block_max : m_old;
      float alpha = 0.0f;
      if (m_old != -kInf) {
        float t[kLanes];
        I::Store(t, Exp<I>(I::Bcast(m_old - m_new)));
        alpha = t[0];
      }
      const V mn = I::Bcast(m_new);
      for (int64_t c = 0; c < np; ++c) I::Store(sr + c * kLanes, Exp<I>(I::Sub(I::Load(sr + c * kLanes), mn)));
      for (int64_t j = 0; j < col0; ++j) sr[j] = 0.0f;
      for (int64_t j = col1; j < ncol; ++j) sr[j] = 0.0f;
      V sum = I::Zero();
      for (int64_t c = 0; c < np; ++c) sum = I::Add(sum, I::Load(sr + c * kLanes));
      a.l[r] = a.l[r] * alpha + FoldSum<I>(sum);
      a.m[r] = m_new;
      if (alpha != 1.0f) {
        const V av = I::Bcast(alpha);
        float* orow = a.o + r * dv;
        for (int64_t c = 0; c < nvo; ++c) I::Store(orow + c * kLanes, I::Mul(I::Load(orow + c * kLanes), av));
      }
    }
    // o += p v over the block's valid keys, in key order.
    const float* v = a.v + p0 * kLanes * dv;
    for (int64_t c0 = 0; c0 < nvo; c0 += I::kPvCols) {
      switch (MinI(I::kPvCols, nvo - c0)) {
        case 1: PvStrip<I, 1>(a, v, s_ld, rows_p, col0, col1, c0); break;
        case 2: PvStrip<I, (I::kPvCols >= 2 ? 2 : 1)>(a, v, s_ld, rows_p, col0, col1, c0); break;
        case 3: PvStrip<I, (I::kPvCols >= 3 ? 3 : 1)>(a, v, s_ld, rows_p, col0, col1, c0); break;
        default: PvStrip<I, (I::kPvCols >= 4 ? 4 : 1)>(a, v, s_ld, rows_p, col0, col1, c0); break;
      }
    }
    kb = ke;
  }
  for (int64_t r = 0; r < a.rows; ++r) {
    const V lv = I::Bcast(a.l[r]);
    float* orow = a.o + r * dv;
    for (int64_t c = 0; c < nvo; ++c) I::Store(orow + c * kLanes, I::Div(I::Load(orow + c * kLanes), lv));
  }
}

}  // namespace
}  // namespace MAGI_FLASH_NAMESPACE
}  // namespace flash
}  // namespace magi
