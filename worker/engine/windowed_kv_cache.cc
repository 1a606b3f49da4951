#include "worker/engine/windowed_kv_cache.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace magi {

WindowedKvCache::WindowedKvCache(int num_layers, int64_t tokens_per_chunk, int groups, int head_dim,
                                 at::TensorOptions options)
    : tokens_per_chunk_(tokens_per_chunk), groups_(groups), head_dim_(head_dim), options_(options), layers_(num_layers) {}

absl::StatusOr<at::Tensor> WindowedKvCache::Read(int layer, int64_t end) {
  at::Tensor out = at::empty({std::max<int64_t>(end, 0), groups_, 2 * head_dim_}, options_);
  MAGI_RETURN_IF_ERROR(ReadInto(layer, end, out));
  return out;
}

absl::Status WindowedKvCache::ReadInto(int layer, int64_t end, const at::Tensor& dst) {
  if (layer < 0 || layer >= static_cast<int>(layers_.size())) {
    return absl::OutOfRangeError(absl::StrCat("kv cache: layer ", layer, " of ", layers_.size()));
  }
  if (end < 0 || end % tokens_per_chunk_ != 0) {
    return absl::InvalidArgumentError(absl::StrCat("kv cache: read end ", end, " is not a non-negative multiple of the ",
                                                   tokens_per_chunk_, " tokens of a chunk"));
  }
  if (dst.dim() != 3 || dst.size(0) != end || dst.size(1) != groups_ || dst.size(2) != 2 * head_dim_) {
    return absl::InvalidArgumentError(absl::StrCat("kv cache: read of ", end, " rows of layer ", layer,
                                                   " needs a [", end, ", ", groups_, ", ", 2 * head_dim_,
                                                   "] buffer"));
  }
  const auto& chunks = layers_[layer];
  const int end_chunk = static_cast<int>(end / tokens_per_chunk_);
  for (int c = dropped_below_; c < end_chunk; ++c) {
    if (!chunks.count(c)) {
      return absl::FailedPreconditionError(absl::StrCat("kv cache: layer ", layer, " read of rows [0, ", end,
                                                        ") but chunk ", c, " was never written"));
    }
  }
  at::Tensor out = dst;
  const int zero_chunks = std::min(dropped_below_, end_chunk);
  if (zero_chunks > 0) out.narrow(0, 0, zero_chunks * tokens_per_chunk_).zero_();
  for (int c = zero_chunks; c < end_chunk; ++c) {
    out.narrow(0, c * tokens_per_chunk_, tokens_per_chunk_).copy_(chunks.at(c));
  }
  return absl::OkStatus();
}

absl::Status WindowedKvCache::Write(int layer, int64_t start, const at::Tensor& kv) {
  if (layer < 0 || layer >= static_cast<int>(layers_.size())) {
    return absl::OutOfRangeError(absl::StrCat("kv cache: layer ", layer, " of ", layers_.size()));
  }
  if (kv.dim() != 3 || start % tokens_per_chunk_ != 0 || kv.size(0) % tokens_per_chunk_ != 0) {
    return absl::InvalidArgumentError(absl::StrCat("kv cache: write of ", kv.dim() == 3 ? kv.size(0) : -1,
                                                   " rows at ", start, " is not aligned to chunks of ",
                                                   tokens_per_chunk_, " tokens"));
  }
  const int first = static_cast<int>(start / tokens_per_chunk_);
  const int count = static_cast<int>(kv.size(0) / tokens_per_chunk_);
  if (count > 0 && first < dropped_below_) {
    return absl::FailedPreconditionError(absl::StrCat("kv cache: write to chunk ", first,
                                                      " which was already dropped (kept from chunk ", dropped_below_,
                                                      ")"));
  }
  auto& chunks = layers_[layer];
  for (int i = 0; i < count; ++i) {
    at::Tensor src = kv.narrow(0, i * tokens_per_chunk_, tokens_per_chunk_);
    auto it = chunks.find(first + i);
    if (it != chunks.end() && it->second.sizes() == src.sizes() && it->second.dtype() == src.dtype() &&
        it->second.device() == src.device()) {
      it->second.copy_(src);
    } else {
      if (it != chunks.end()) bytes_ -= it->second.nbytes();
      at::Tensor copy = src.clone(at::MemoryFormat::Contiguous);
      bytes_ += copy.nbytes();
      chunks[first + i] = copy;
    }
  }
  peak_bytes_ = std::max(peak_bytes_, bytes_);
  return absl::OkStatus();
}

void WindowedKvCache::DropBelow(int chunk) {
  if (chunk <= dropped_below_) return;
  for (auto& chunks : layers_) {
    for (auto it = chunks.begin(); it != chunks.end() && it->first < chunk;) {
      bytes_ -= it->second.nbytes();
      it = chunks.erase(it);
    }
  }
  dropped_below_ = chunk;
}

}  // namespace magi
