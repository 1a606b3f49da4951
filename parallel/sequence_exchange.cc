#include "parallel/sequence_exchange.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "base/status_macros.h"
#include "parallel/communicator.h"

namespace magi {

UlyssesExchange::UlyssesExchange(Communicator* comm, int rank, int cp_size, int64_t tokens, int64_t batch)
    : comm_(comm), rank_(rank), batch_(batch) {
  const int cp = std::max(1, cp_size);
  rows_.resize(cp);
  for (int q = 0; q < cp; ++q) rows_[q] = tokens / cp + (q < tokens % cp ? 1 : 0);
  for (int q = 0; q < rank_; ++q) offset_ += rows_[q];
}

at::Tensor UlyssesExchange::Slice(const at::Tensor& whole) const {
  return size() == 1 ? whole : whole.narrow(0, offset_, local());
}

absl::StatusOr<at::Tensor> UlyssesExchange::ScatterHeads(const at::Tensor& t, const std::string& label) const {
  const int cp = size();
  if (cp == 1) return t;
  const int64_t X = t.size(2) / cp, W = t.size(3), n = local();
  at::Tensor send = t.reshape({n, batch_, cp, X, W}).permute({2, 0, 1, 3, 4}).reshape({cp * n, batch_, X, W});
  at::Tensor recv;
  MAGI_RETURN_IF_ERROR(comm_->AllToAll(send, std::vector<int64_t>(cp, n), rows_, &recv, label));
  return recv;
}

absl::StatusOr<at::Tensor> UlyssesExchange::GatherHeads(const at::Tensor& t, const std::string& label) const {
  const int cp = size();
  if (cp == 1) return t;
  const int64_t X = t.size(2), W = t.size(3), n = local();
  at::Tensor recv;
  MAGI_RETURN_IF_ERROR(comm_->AllToAll(t.contiguous(), rows_, std::vector<int64_t>(cp, n), &recv, label));
  return recv.view({cp, n, batch_, X, W}).permute({1, 2, 0, 3, 4}).reshape({n, batch_, cp * X, W});
}

absl::StatusOr<at::Tensor> UlyssesExchange::GatherTokens(const at::Tensor& t, const std::string& label) const {
  if (size() == 1) return t;
  at::Tensor full;
  MAGI_RETURN_IF_ERROR(comm_->AllGather(t.contiguous(), rows_, &full, label));
  return full;
}

absl::Status SumPartials(Communicator* comm, at::Tensor& partial, const std::string& label) {
  if (comm == nullptr || comm->size() == 1) return absl::OkStatus();
  return comm->AllReduceSum(partial, label);
}

}  // namespace magi
