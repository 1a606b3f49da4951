// The collectives one DiT forward makes, in the model's own terms (spec parallel.md §1.2-1.3):
//
//  - Context parallelism (Ulysses): every CP rank holds a contiguous slice of the window's
//    tokens. Around attention an all-to-all trades that token split for a head split (each rank
//    then attends over all tokens with its share of the heads) and a second one trades back;
//    after the output head an all-gather rebuilds the whole window on every rank.
//  - Tensor parallelism: a row-parallel linear (linear_proj, fc2) leaves partial sums that one
//    all-reduce adds up.
//
// With one rank in a group every call is the identity and no communicator is needed, so model
// code has a single path for any layout.
#ifndef MAGI_PARALLEL_SEQUENCE_EXCHANGE_H_
#define MAGI_PARALLEL_SEQUENCE_EXCHANGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace magi {

class Communicator;

class UlyssesExchange {
 public:
  // `tokens` (S) tokens of batch `batch` (N), laid out [S, N, ...], split over the `cp_size`
  // ranks of the `comm` group (`rank` is this one; `comm` is not used, and may be null, when
  // cp_size is 1): rank q holds S / cp tokens, the first S % cp ranks one more.
  UlyssesExchange(Communicator* comm, int rank, int cp_size, int64_t tokens, int64_t batch);

  int size() const { return static_cast<int>(rows_.size()); }
  // This rank's token slice [offset, offset + local) and every rank's token count.
  int64_t offset() const { return offset_; }
  int64_t local() const { return rows_[rank_]; }
  const std::vector<int64_t>& rows_per_rank() const { return rows_; }
  // This rank's slice of a tensor over the whole window's tokens (dim 0).
  at::Tensor Slice(const at::Tensor& whole) const;

  // Token split to head split: [local, N, cp * X, W] (heads in cp contiguous groups) ->
  // [S, N, X, W] (all tokens, this rank's head group).
  absl::StatusOr<at::Tensor> ScatterHeads(const at::Tensor& t, const std::string& label) const;
  // Head split back to token split: [S, N, X, W] -> [local, N, cp * X, W].
  absl::StatusOr<at::Tensor> GatherHeads(const at::Tensor& t, const std::string& label) const;
  // Every rank's token slice of [local, ...] concatenated: [S, ...].
  absl::StatusOr<at::Tensor> GatherTokens(const at::Tensor& t, const std::string& label) const;

 private:
  Communicator* comm_;
  int rank_;
  int64_t batch_;
  int64_t offset_ = 0;
  std::vector<int64_t> rows_;
};

// Adds the tensor-parallel partial sums in place (`comm` null or of one rank: nothing to do).
absl::Status SumPartials(Communicator* comm, at::Tensor& partial, const std::string& label);

}  // namespace magi

#endif  // MAGI_PARALLEL_SEQUENCE_EXCHANGE_H_
