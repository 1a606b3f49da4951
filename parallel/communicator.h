// One collective interface over every backend (c10d Gloo on CPU tensors, c10d NCCL or a
// direct NCCL communicator on CUDA tensors). TP and CP layers call it and never branch on
// the backend, like c10d's ProcessGroup.
//
// Every call is collective: all ranks of the group must make it, in the same order, with
// matching shapes. Errors (a peer that died or timed out, a backend failure) come back as
// absl::Status naming the operation and the group; after an error the group is unusable.
//
// Byte accounting: each call adds what this rank puts on the wire to CommStats under the
// operation's name, using the standard algorithm volumes (ring all-reduce 2(n-1)/n of the
// buffer, all-gather (n-1)/n of the output, all-to-all the rows sent to other ranks), so
// measured bytes compare 1:1 with the analytic volumes of spec parallel.md §2.
//
// Not thread-safe: one thread drives a communicator.
#ifndef MAGI_PARALLEL_COMMUNICATOR_H_
#define MAGI_PARALLEL_COMMUNICATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"

namespace magi {

struct CommStats {
  struct Entry {
    int64_t calls = 0;
    int64_t wire_bytes = 0;
  };
  std::map<std::string, Entry> by_op;  // key: operation label, e.g. "tp.allreduce.proj"
  void Add(const std::string& op, int64_t bytes);
  int64_t TotalBytes() const;
  void Clear() { by_op.clear(); }
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // A short name for errors and stats ("tp", "cp", "world").
  virtual const std::string& name() const = 0;

  // In-place sum over ranks. bf16/fp16 inputs are reduced in float32 and cast back.
  virtual absl::Status AllReduceSum(at::Tensor& tensor, const std::string& label) = 0;
  // Concatenates every rank's `input` along dim 0 (sizes may differ on dim 0 only).
  virtual absl::Status AllGather(const at::Tensor& input, const std::vector<int64_t>& rows_per_rank,
                                 at::Tensor* output, const std::string& label) = 0;
  // Rows of `input` [sum(send_rows), ...] go to ranks in order; `output` receives
  // [sum(recv_rows), ...] ordered by source rank. Dtypes move bit-exactly.
  virtual absl::Status AllToAll(const at::Tensor& input, const std::vector<int64_t>& send_rows,
                                const std::vector<int64_t>& recv_rows, at::Tensor* output,
                                const std::string& label) = 0;
  // Copies rank `root`'s tensor into every rank's `tensor` (same shape and dtype).
  virtual absl::Status Broadcast(at::Tensor& tensor, int root, const std::string& label) = 0;
  virtual absl::Status Barrier() = 0;

  CommStats& stats() { return stats_; }

 protected:
  CommStats stats_;
};

// The group of one: every collective is a copy (or nothing). Used when a layout has no
// parallelism, and in tests.
std::unique_ptr<Communicator> MakeSingleRankCommunicator(const std::string& name);

}  // namespace magi

#endif  // MAGI_PARALLEL_COMMUNICATOR_H_
