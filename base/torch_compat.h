// LibTorch API differences between the two builds magi-serve supports: Debian's LibTorch 1.13
// (CPU, every test here) and an official CUDA LibTorch 2.x (the libtorch archive or the one in
// a PyTorch wheel). Only the differences the code base meets live here; each names the version
// that changed it. Header-only and cheap: it pulls in torch/version.h and nothing else.
//
// Known differences handled elsewhere, next to their only caller:
//   - scaled dot-product attention: `at::_scaled_dot_product_attention` (1.13, returns a
//     tuple) vs `at::scaled_dot_product_attention` (2.0+; arguments grew in 2.1 and 2.5):
//     the SDPA shim in kernels/ (see MAGI_TORCH_AT_LEAST below).
//   - float8 dtypes exist from 2.1; the fp8 path reads raw bytes on every version.
#ifndef MAGI_BASE_TORCH_COMPAT_H_
#define MAGI_BASE_TORCH_COMPAT_H_

#include <torch/version.h>

// True when the LibTorch compiled against is at least major.minor.
#define MAGI_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace c10d {
class ProcessGroup;
class Backend;
}  // namespace c10d

namespace magi {

// The c10d class that holds the collectives of one backend. Up to 1.13 a backend *is* a
// `c10d::ProcessGroup` (ProcessGroupGloo derives from it); from 2.0 backends derive from
// `c10d::Backend` and a ProcessGroup is a dispatcher over several of them. Both declare
// allreduce / allgather / alltoall_base / broadcast / barrier with the same signatures, so
// holding a ProcessGroupGloo through this alias compiles against either.
#if MAGI_TORCH_AT_LEAST(2, 0)
using C10dCollectives = c10d::Backend;
#else
using C10dCollectives = c10d::ProcessGroup;
#endif

}  // namespace magi

#endif  // MAGI_BASE_TORCH_COMPAT_H_
