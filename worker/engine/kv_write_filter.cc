#include "worker/engine/kv_write_filter.h"

#include <algorithm>

#include <ATen/ATen.h>


namespace magi {

absl::Status KvWriteFilter::Write(int layer, int64_t start, const at::Tensor& kv) {
  if (kv.dim() < 1) return absl::InvalidArgumentError("kv write filter: a write needs [n, G, 2*hd] rows");
  const int64_t n = kv.size(0);
  const int64_t lo = std::max(start, begin_), hi = std::min(start + n, end_);
  if (hi <= lo) {
    rows_dropped_ += n;
    return absl::OkStatus();
  }
  rows_written_ += hi - lo;
  rows_dropped_ += n - (hi - lo);
  return cache_->Write(layer, lo, kv.narrow(0, lo - start, hi - lo));
}

}  // namespace magi
