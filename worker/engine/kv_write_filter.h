// A KvCache adapter that passes reads through and keeps only the writes to rows
// [begin, end): the rest of a write is dropped. The engine puts one in front of the windowed
// cache so that only K/V a later pass can read are stored (ArEngine: a chunk's rows from its
// clean pass); the reference stores every window chunk's noisy K/V at every step and
// overwrites them before any read.
//
// Not thread-safe; must not outlive `cache`.
#ifndef MAGI_WORKER_ENGINE_KV_WRITE_FILTER_H_
#define MAGI_WORKER_ENGINE_KV_WRITE_FILTER_H_

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "worker/model/kv_cache.h"

namespace magi {

class KvWriteFilter : public KvCache {
 public:
  explicit KvWriteFilter(KvCache* cache) : cache_(cache) {}

  // Rows later writes may store; begin >= end keeps none.
  void SetWritableRows(int64_t begin, int64_t end) {
    begin_ = begin;
    end_ = end;
  }

  absl::StatusOr<at::Tensor> Read(int layer, int64_t end) override { return cache_->Read(layer, end); }
  absl::Status ReadInto(int layer, int64_t end, const at::Tensor& dst) override {
    return cache_->ReadInto(layer, end, dst);
  }
  absl::Status Write(int layer, int64_t start, const at::Tensor& kv) override;

  // Rows passed on and rows dropped since construction (all layers).
  int64_t rows_written() const { return rows_written_; }
  int64_t rows_dropped() const { return rows_dropped_; }

 private:
  KvCache* cache_;
  int64_t begin_ = 0, end_ = 0;
  int64_t rows_written_ = 0, rows_dropped_ = 0;
};

}  // namespace magi

#endif  // MAGI_WORKER_ENGINE_KV_WRITE_FILTER_H_
