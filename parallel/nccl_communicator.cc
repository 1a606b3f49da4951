#include "parallel/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "absl/strings/str_cat.h"

namespace magi {
namespace {

absl::StatusOr<ncclDataType_t> NcclType(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return ncclFloat32;
    case at::kHalf: return ncclFloat16;
    case at::kBFloat16: return ncclBfloat16;
    case at::kDouble: return ncclFloat64;
    case at::kInt: return ncclInt32;
    case at::kLong: return ncclInt64;
    case at::kByte: case at::kBool: return ncclUint8;
    default: return absl::InvalidArgumentError(absl::StrCat("NCCL: unsupported dtype ", c10::toString(t)));
  }
}

int64_t RowBytes(const at::Tensor& t) { return t.size(0) == 0 ? 0 : t.nbytes() / t.size(0); }

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::string name, ncclComm_t comm, int rank, int size, int device)
      : name_(std::move(name)), comm_(comm), rank_(rank), size_(size), device_(device) {}
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }

  absl::Status AllReduceSum(at::Tensor& tensor, const std::string& label) override {
    auto type = NcclType(tensor.scalar_type());
    if (!type.ok()) return type.status();
    at::Tensor buf = tensor.contiguous();
    if (auto s = Check(ncclAllReduce(buf.data_ptr(), buf.data_ptr(), buf.numel(), *type, ncclSum, comm_, nullptr),
                       "all-reduce", label); !s.ok()) return s;
    if (auto s = Sync("all-reduce", label); !s.ok()) return s;
    if (!buf.is_same(tensor)) tensor.copy_(buf);
    stats_.Add(label, 2 * (size_ - 1) * tensor.nbytes() / size_);
    return absl::OkStatus();
  }

  absl::Status AllGather(const at::Tensor& input, const std::vector<int64_t>& rows_per_rank, at::Tensor* output,
                         const std::string& label) override {
    auto type = NcclType(input.scalar_type());
    if (!type.ok()) return type.status();
    std::vector<int64_t> shape = input.sizes().vec();
    int64_t total = 0;
    for (int64_t r : rows_per_rank) total += r;
    shape[0] = total;
    at::Tensor in = input.contiguous();
    at::Tensor out = at::empty(shape, in.options());
    const int64_t row_elems = in.size(0) == 0 ? 0 : in.numel() / in.size(0);
    // Uneven all-gather as grouped broadcasts of each rank's rows.
    ncclGroupStart();
    int64_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      char* dst = static_cast<char*>(out.data_ptr()) + offset * RowBytes(out);
      ncclBroadcast(r == rank_ ? in.data_ptr() : dst, dst, rows_per_rank[r] * row_elems, *type, r, comm_, nullptr);
      offset += rows_per_rank[r];
    }
    if (auto s = Check(ncclGroupEnd(), "all-gather", label); !s.ok()) return s;
    if (auto s = Sync("all-gather", label); !s.ok()) return s;
    *output = out;
    stats_.Add(label, (total - rows_per_rank[rank_]) * RowBytes(in));
    return absl::OkStatus();
  }

  absl::Status AllToAll(const at::Tensor& input, const std::vector<int64_t>& send_rows,
                        const std::vector<int64_t>& recv_rows, at::Tensor* output, const std::string& label) override {
    auto type = NcclType(input.scalar_type());
    if (!type.ok()) return type.status();
    at::Tensor in = input.contiguous();
    std::vector<int64_t> shape = in.sizes().vec();
    int64_t total = 0, sent_out = 0;
    for (int64_t r : recv_rows) total += r;
    shape[0] = total;
    at::Tensor out = at::empty(shape, in.options());
    const int64_t rb = RowBytes(in), row_elems = in.size(0) == 0 ? 0 : in.numel() / in.size(0);
    ncclGroupStart();
    int64_t so = 0, ro = 0;
    for (int r = 0; r < size_; ++r) {
      ncclSend(static_cast<char*>(in.data_ptr()) + so * rb, send_rows[r] * row_elems, *type, r, comm_, nullptr);
      ncclRecv(static_cast<char*>(out.data_ptr()) + ro * rb, recv_rows[r] * row_elems, *type, r, comm_, nullptr);
      so += send_rows[r];
      ro += recv_rows[r];
      if (r != rank_) sent_out += send_rows[r];
    }
    if (auto s = Check(ncclGroupEnd(), "all-to-all", label); !s.ok()) return s;
    if (auto s = Sync("all-to-all", label); !s.ok()) return s;
    *output = out;
    stats_.Add(label, sent_out * rb);
    return absl::OkStatus();
  }

  absl::Status Broadcast(at::Tensor& tensor, int root, const std::string& label) override {
    auto type = NcclType(tensor.scalar_type());
    if (!type.ok()) return type.status();
    at::Tensor buf = tensor.contiguous();
    if (auto s = Check(ncclBroadcast(buf.data_ptr(), buf.data_ptr(), buf.numel(), *type, root, comm_, nullptr),
                       "broadcast", label); !s.ok()) return s;
    if (auto s = Sync("broadcast", label); !s.ok()) return s;
    if (!buf.is_same(tensor)) tensor.copy_(buf);
    stats_.Add(label, rank_ == root ? tensor.nbytes() : 0);
    return absl::OkStatus();
  }

  absl::Status Barrier() override {
    at::Tensor one = at::ones({1}, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA, device_));
    return AllReduceSum(one, "barrier");
  }

 private:
  absl::Status Check(ncclResult_t r, const char* op, const std::string& label) {
    if (r == ncclSuccess) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat(op, " '", label, "' in NCCL group '", name_, "' (rank ", rank_, " of ",
                                               size_, ") failed: ", ncclGetErrorString(r)));
  }
  absl::Status Sync(const char* op, const std::string& label) {
    cudaError_t e = cudaStreamSynchronize(nullptr);
    if (e == cudaSuccess) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat(op, " '", label, "' in NCCL group '", name_, "': ", cudaGetErrorString(e)));
  }

  std::string name_;
  ncclComm_t comm_;
  int rank_, size_, device_;
};

}  // namespace

std::string NcclVersionString() {
  int v = 0;
  ncclGetVersion(&v);
  return absl::StrCat("NCCL ", v / 10000, ".", (v % 10000) / 100, ".", v % 100);
}

absl::StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(const std::string& name, c10d::Store& store,
                                                                   int rank, int size, int device) {
  if (cudaSetDevice(device) != cudaSuccess) {
    return absl::FailedPreconditionError(absl::StrCat("NCCL group '", name, "': CUDA device ", device,
                                                      " is not usable: ", cudaGetErrorString(cudaGetLastError())));
  }
  ncclUniqueId id;
  const std::string key = name + "/nccl_id";
  try {
    if (rank == 0) {
      if (ncclGetUniqueId(&id) != ncclSuccess) return absl::UnavailableError("ncclGetUniqueId failed");
      std::vector<uint8_t> bytes(reinterpret_cast<uint8_t*>(&id), reinterpret_cast<uint8_t*>(&id) + sizeof(id));
      store.set(key, bytes);
    } else {
      std::vector<uint8_t> bytes = store.get(key);
      if (bytes.size() != sizeof(id)) return absl::DataLossError("NCCL unique id in the store has the wrong size");
      std::memcpy(&id, bytes.data(), sizeof(id));
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("NCCL group '", name, "': exchanging the unique id failed: ", e.what()));
  }
  ncclComm_t comm;
  ncclResult_t r = ncclCommInitRank(&comm, size, id, rank);
  if (r != ncclSuccess) {
    return absl::UnavailableError(absl::StrCat("NCCL group '", name, "': ncclCommInitRank failed: ", ncclGetErrorString(r)));
  }
  return std::unique_ptr<Communicator>(new NcclCommunicator(name, comm, rank, size, device));
}

}  // namespace magi
