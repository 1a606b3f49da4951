#include "parallel/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Store.hpp>
#ifdef MAGI_TORCH_HAS_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

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

int64_t RowBytes(const at::Tensor& t) {
  if (t.dim() == 0) return t.element_size();
  return t.size(0) == 0 ? 0 : t.nbytes() / t.size(0);
}

// Makes `device` current for the scope of one call and restores the caller's device after.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) == cudaSuccess && previous_ != device) {
      ok_ = cudaSetDevice(device) == cudaSuccess;
      restore_ = ok_;
    }
  }
  ~DeviceScope() {
    if (restore_) cudaSetDevice(previous_);
  }
  bool ok() const { return ok_; }

 private:
  int previous_ = -1;
  bool ok_ = true, restore_ = false;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::string name, ncclComm_t comm, int rank, int size, int device)
      : name_(std::move(name)), comm_(comm), rank_(rank), size_(size), device_(device) {}
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }

  // bf16/fp16 are summed in fp32 like the Gloo path (the reference reduces linear_proj
  // partials in fp32): upcast on the stream, reduce, cast back into the caller's tensor.
  absl::Status AllReduceSum(at::Tensor& tensor, const std::string& label) override {
    const char* op = "all-reduce";
    MAGI_RETURN_IF_ERROR(Ready(op, label, {&tensor}));
    DeviceScope scope(device_);
    const bool low = tensor.scalar_type() == at::kBFloat16 || tensor.scalar_type() == at::kHalf;
    at::Tensor buf = low ? tensor.to(at::kFloat) : tensor.contiguous();
    auto type = NcclType(buf.scalar_type());
    if (!type.ok()) return Fail(op, label, type.status().message());
    if (auto s = Check(ncclAllReduce(buf.data_ptr(), buf.data_ptr(), buf.numel(), *type, ncclSum, comm_, Stream()),
                       op, label); !s.ok()) return s;
    if (!buf.is_same(tensor)) tensor.copy_(buf);
    stats_.Add(label, 2 * (size_ - 1) * tensor.nbytes() / size_);
    return absl::OkStatus();
  }

  absl::Status AllGather(const at::Tensor& input, const std::vector<int64_t>& rows_per_rank, at::Tensor* output,
                         const std::string& label) override {
    const char* op = "all-gather";
    MAGI_RETURN_IF_ERROR(Ready(op, label, {&input}));
    MAGI_RETURN_IF_ERROR(CheckRows(op, label, rows_per_rank, "rows_per_rank"));
    if (rows_per_rank[rank_] != input.size(0)) {
      return Fail(op, label, absl::StrCat("this rank gives ", input.size(0), " rows but rows_per_rank says ",
                                          rows_per_rank[rank_]));
    }
    auto type = NcclType(input.scalar_type());
    if (!type.ok()) return Fail(op, label, type.status().message());
    DeviceScope scope(device_);
    std::vector<int64_t> shape = input.sizes().vec();
    int64_t total = 0;
    for (int64_t r : rows_per_rank) total += r;
    shape[0] = total;
    at::Tensor in = input.contiguous();
    at::Tensor out = at::empty(shape, in.options());
    const int64_t rb = RowBytes(in), row_elems = in.size(0) == 0 ? 0 : in.numel() / in.size(0);
    // Uneven all-gather as grouped broadcasts of each rank's rows, on the current stream.
    cudaStream_t stream = Stream();
    MAGI_RETURN_IF_ERROR(Check(ncclGroupStart(), op, label));
    int64_t offset = 0;
    ncclResult_t first_error = ncclSuccess;
    for (int r = 0; r < size_; ++r) {
      char* dst = static_cast<char*>(out.data_ptr()) + offset * rb;
      ncclResult_t e = ncclBroadcast(r == rank_ ? in.data_ptr() : dst, dst, rows_per_rank[r] * row_elems, *type, r,
                                     comm_, stream);
      if (first_error == ncclSuccess) first_error = e;
      offset += rows_per_rank[r];
    }
    ncclResult_t end = ncclGroupEnd();
    MAGI_RETURN_IF_ERROR(Check(first_error != ncclSuccess ? first_error : end, op, label));
    *output = out;
    stats_.Add(label, (total - rows_per_rank[rank_]) * RowBytes(in));
    return absl::OkStatus();
  }

  absl::Status AllToAll(const at::Tensor& input, const std::vector<int64_t>& send_rows,
                        const std::vector<int64_t>& recv_rows, at::Tensor* output, const std::string& label) override {
    const char* op = "all-to-all";
    MAGI_RETURN_IF_ERROR(Ready(op, label, {&input}));
    MAGI_RETURN_IF_ERROR(CheckRows(op, label, send_rows, "send_rows"));
    MAGI_RETURN_IF_ERROR(CheckRows(op, label, recv_rows, "recv_rows"));
    int64_t sent = 0;
    for (int64_t r : send_rows) sent += r;
    if (sent != input.size(0)) {
      return Fail(op, label, absl::StrCat("send_rows sum to ", sent, " but the input has ", input.size(0), " rows"));
    }
    auto type = NcclType(input.scalar_type());
    if (!type.ok()) return Fail(op, label, type.status().message());
    DeviceScope scope(device_);
    at::Tensor in = input.contiguous();
    std::vector<int64_t> shape = in.sizes().vec();
    int64_t total = 0, sent_out = 0;
    for (int64_t r : recv_rows) total += r;
    shape[0] = total;
    at::Tensor out = at::empty(shape, in.options());
    const int64_t rb = RowBytes(in), row_elems = in.size(0) == 0 ? 0 : in.numel() / in.size(0);
    cudaStream_t stream = Stream();
    MAGI_RETURN_IF_ERROR(Check(ncclGroupStart(), op, label));
    int64_t so = 0, ro = 0;
    ncclResult_t first_error = ncclSuccess;
    for (int r = 0; r < size_; ++r) {
      ncclResult_t a = ncclSend(static_cast<char*>(in.data_ptr()) + so * rb, send_rows[r] * row_elems, *type, r,
                                comm_, stream);
      ncclResult_t b = ncclRecv(static_cast<char*>(out.data_ptr()) + ro * rb, recv_rows[r] * row_elems, *type, r,
                                comm_, stream);
      if (first_error == ncclSuccess) first_error = a != ncclSuccess ? a : b;
      so += send_rows[r];
      ro += recv_rows[r];
      if (r != rank_) sent_out += send_rows[r];
    }
    ncclResult_t end = ncclGroupEnd();
    MAGI_RETURN_IF_ERROR(Check(first_error != ncclSuccess ? first_error : end, op, label));
    *output = out;
    stats_.Add(label, sent_out * rb);
    return absl::OkStatus();
  }

  absl::Status Broadcast(at::Tensor& tensor, int root, const std::string& label) override {
    const char* op = "broadcast";
    MAGI_RETURN_IF_ERROR(Ready(op, label, {&tensor}));
    if (root < 0 || root >= size_) return Fail(op, label, absl::StrCat("root ", root, " is not a rank of the group"));
    auto type = NcclType(tensor.scalar_type());
    if (!type.ok()) return Fail(op, label, type.status().message());
    DeviceScope scope(device_);
    at::Tensor buf = tensor.contiguous();
    if (auto s = Check(ncclBroadcast(buf.data_ptr(), buf.data_ptr(), buf.numel(), *type, root, comm_, Stream()), op,
                       label); !s.ok()) return s;
    if (!buf.is_same(tensor)) tensor.copy_(buf);
    stats_.Add(label, rank_ == root ? tensor.nbytes() : 0);
    return absl::OkStatus();
  }

  // The one host synchronisation: a barrier is a promise about the host's progress.
  absl::Status Barrier() override {
    at::Tensor one = at::ones({1}, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA, device_));
    MAGI_RETURN_IF_ERROR(AllReduceSum(one, "barrier"));
    DeviceScope scope(device_);
    cudaError_t e = cudaStreamSynchronize(Stream());
    if (e != cudaSuccess) return Fail("barrier", "barrier", cudaGetErrorString(e));
    return Ready("barrier", "barrier", {});
  }

 private:
  // Collectives go on the caller's current stream (LibTorch's, where it has CUDA), ordered
  // after the kernels that produced their inputs and before those that read their outputs,
  // with no host wait: the caching allocator's stream-ordered reuse keeps temporaries valid.
  // A LibTorch without CUDA cannot make CUDA tensors, so its stream is never used (Ready
  // rejects CPU tensors first); the per-thread stream keeps it off the legacy default stream.
  cudaStream_t Stream() const {
#ifdef MAGI_TORCH_HAS_CUDA
    return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_)).stream();
#else
    return cudaStreamPerThread;
#endif
  }

  // Every tensor must live on this communicator's GPU; an error NCCL reported asynchronously
  // for an earlier collective (a peer died, a network error) surfaces here.
  absl::Status Ready(const char* op, const std::string& label, std::initializer_list<const at::Tensor*> tensors) {
    for (const at::Tensor* t : tensors) {
      if (!t->is_cuda() || t->device().index() != device_) {
        return absl::InvalidArgumentError(absl::StrCat(op, " '", label, "' in NCCL group '", name_, "': the tensor is on ",
                                                       t->device().str(), ", this communicator moves cuda:", device_,
                                                       " tensors"));
      }
    }
    ncclResult_t async = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
    if (r != ncclSuccess) return Check(r, op, label);
    return Check(async, op, label);
  }

  absl::Status CheckRows(const char* op, const std::string& label, const std::vector<int64_t>& rows,
                         const char* what) {
    if (static_cast<int>(rows.size()) != size_) {
      return Fail(op, label, absl::StrCat(what, " has ", rows.size(), " entries for a group of ", size_));
    }
    for (int64_t r : rows) {
      if (r < 0) return Fail(op, label, absl::StrCat(what, " has a negative entry (", r, ")"));
    }
    return absl::OkStatus();
  }

  absl::Status Check(ncclResult_t r, const char* op, const std::string& label) {
    if (r == ncclSuccess) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat(op, " '", label, "' in NCCL group '", name_, "' (rank ", rank_, " of ",
                                               size_, ") failed: ", ncclGetErrorString(r)));
  }
  absl::Status Fail(const char* op, const std::string& label, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(op, " '", label, "' in NCCL group '", name_, "' (rank ", rank_,
                                                   " of ", size_, "): ", why));
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

absl::Status CheckCudaDevice(int device) {
  int devices = 0;
  cudaError_t ce = cudaGetDeviceCount(&devices);
  if (ce != cudaSuccess) {
    return absl::UnavailableError(absl::StrCat("no usable CUDA device (", cudaGetErrorString(ce), ")"));
  }
  if (device < 0 || device >= devices) {
    return absl::FailedPreconditionError(absl::StrCat("CUDA device ", device, " does not exist (", devices,
                                                      " visible)"));
  }
  if ((ce = cudaSetDevice(device)) != cudaSuccess) {
    return absl::UnavailableError(absl::StrCat("CUDA device ", device, " is not usable: ", cudaGetErrorString(ce)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(const std::string& name, c10d::Store& store,
                                                                   int rank, int size, int device) {
  if (size < 1 || rank < 0 || rank >= size) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL group '", name, "': rank ", rank, " of ", size));
  }
  if (absl::Status s = CheckCudaDevice(device); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("NCCL group '", name, "': ", s.message()));
  }
  ncclUniqueId id;
  const std::string key = name + "/nccl_id";
  try {
    if (rank == 0) {
      ncclResult_t r = ncclGetUniqueId(&id);
      if (r != ncclSuccess) {
        return absl::UnavailableError(absl::StrCat("NCCL group '", name, "': ncclGetUniqueId failed: ",
                                                   ncclGetErrorString(r)));
      }
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
