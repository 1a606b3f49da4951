#include "kernels/gemm.h"

#include <ATen/ATen.h>

namespace magi {
namespace gemm {
namespace {

constexpr at::ScalarType kAcc = at::kDouble;

bool Reduced(at::ScalarType t) { return t == at::kBFloat16 || t == at::kHalf; }

at::ScalarType OutType(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
  at::ScalarType t = at::promote_types(a.scalar_type(), b.scalar_type());
  if (c.defined()) t = at::promote_types(t, c.scalar_type());
  return t;
}

// On CPU a reduced-precision product runs in float64 (then one rounding); elsewhere the
// native op runs in the output dtype.
bool ComputeWide(const at::Tensor& x, at::ScalarType out) { return Reduced(out) && x.device().is_cpu(); }

at::Tensor As(const at::Tensor& t, at::ScalarType type) {
  if (!t.defined() || t.scalar_type() == type) return t;
  return t.to(type);
}

}  // namespace

at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const at::ScalarType out = OutType(x, w, b);
  if (ComputeWide(x, out)) return at::linear(As(x, kAcc), As(w, kAcc), As(b, kAcc)).to(out);
  return at::linear(As(x, out), As(w, out), As(b, out));
}

at::Tensor Conv3d(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, at::IntArrayRef stride,
                  at::IntArrayRef padding) {
  const at::ScalarType out = OutType(x, w, b);
  if (ComputeWide(x, out)) {
    return at::conv3d(As(x, kAcc), As(w, kAcc), As(b, kAcc), stride, padding).to(out);
  }
  return at::conv3d(As(x, out), As(w, out), As(b, out), stride, padding);
}

at::Tensor Gelu(const at::Tensor& x) {
  if (!Reduced(x.scalar_type()) || !x.device().is_cpu()) return at::gelu(x);
  at::Tensor d = x.to(at::kDouble);
  return (d * 0.5 * (1.0 + at::erf(d * M_SQRT1_2))).to(x.scalar_type());
}

at::Tensor Matmul(const at::Tensor& a, const at::Tensor& b) {
  const at::ScalarType out = OutType(a, b, at::Tensor());
  if (ComputeWide(a, out)) return at::matmul(As(a, kAcc), As(b, kAcc)).to(out);
  return at::matmul(As(a, out), As(b, out));
}

}  // namespace gemm
}  // namespace magi
