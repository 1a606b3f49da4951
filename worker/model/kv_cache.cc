#include "worker/model/kv_cache.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace magi {

absl::Status KvCache::ReadInto(int layer, int64_t end, const at::Tensor& dst) {
  MAGI_ASSIGN_OR_RETURN(auto rows, Read(layer, end));
  if (dst.sizes() != rows.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat("kv cache: read of ", end, " rows of layer ", layer,
                                                   " into a buffer of ", dst.dim() > 0 ? dst.size(0) : 0,
                                                   " rows (or of other row shape)"));
  }
  at::Tensor out = dst;
  out.copy_(rows);
  return absl::OkStatus();
}

DenseKvCache::DenseKvCache(int num_layers, int64_t max_tokens, int groups, int head_dim, at::TensorOptions options) {
  for (int l = 0; l < num_layers; ++l) {
    buffers_.push_back(at::full({max_tokens, groups, 2 * head_dim}, NAN, options));
    written_end_.push_back(0);
  }
}

absl::StatusOr<at::Tensor> DenseKvCache::Read(int layer, int64_t end) {
  if (layer < 0 || layer >= static_cast<int>(buffers_.size())) {
    return absl::OutOfRangeError(absl::StrCat("kv cache: layer ", layer, " of ", buffers_.size()));
  }
  if (end > written_end_[layer]) {
    return absl::FailedPreconditionError(absl::StrCat("kv cache: layer ", layer, " read of rows [0, ", end,
                                                      ") but only rows [0, ", written_end_[layer], ") were written"));
  }
  return buffers_[layer].narrow(0, 0, end);
}

absl::Status DenseKvCache::Write(int layer, int64_t start, const at::Tensor& kv) {
  if (layer < 0 || layer >= static_cast<int>(buffers_.size())) {
    return absl::OutOfRangeError(absl::StrCat("kv cache: layer ", layer, " of ", buffers_.size()));
  }
  const at::Tensor& buf = buffers_[layer];
  const int64_t n = kv.size(0);
  if (start < 0 || start + n > buf.size(0) || kv.dim() != 3 || kv.size(1) != buf.size(1) || kv.size(2) != buf.size(2)) {
    return absl::OutOfRangeError(absl::StrCat("kv cache: write of ", n, " rows at ", start, " into a buffer of ",
                                              buf.size(0), " rows (layer ", layer, ")"));
  }
  if (start > written_end_[layer]) {
    return absl::FailedPreconditionError(absl::StrCat("kv cache: write at row ", start, " leaves a gap after row ",
                                                      written_end_[layer], " (layer ", layer, ")"));
  }
  buf.narrow(0, start, n).copy_(kv);
  written_end_[layer] = std::max(written_end_[layer], start + n);
  return absl::OkStatus();
}

int64_t DenseKvCache::bytes() const {
  int64_t n = 0;
  for (const auto& b : buffers_) n += b.nbytes();
  return n;
}

}  // namespace magi
