// A Communicator straight on NCCL (nccl.h from the CUDA toolkit or the nvidia-nccl wheel) for
// CUDA tensors; RankGroup::Join builds the TP and CP groups with it for the nccl backend, with
// any LibTorch (ProcessGroupNCCL is not used: Debian's LibTorch lacks it, and one code path is
// easier to reason about). The ncclUniqueId travels through the same c10d store as the
// rendezvous. Built only with MAGI_WITH_CUDA; CI compiles and links it, only a GPU runs it.
//
// Streams: every collective is enqueued on the caller's current CUDA stream (LibTorch's
// getCurrentCUDAStream) and returns without waiting on the host; results are ready for any
// later work on that stream. Only Barrier() synchronises the host. Errors NCCL detects later
// (a dead peer) are reported by the next call. bf16/fp16 all-reduces sum in fp32, like Gloo.
// Byte accounting is the same as the Gloo communicator's (communicator.h).
#ifndef MAGI_PARALLEL_NCCL_COMMUNICATOR_H_
#define MAGI_PARALLEL_NCCL_COMMUNICATOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "parallel/communicator.h"

namespace c10d {
class Store;
}

namespace magi {

// Rank `rank` of `size` joins the NCCL communicator named `name`; rank 0 creates the unique
// id and publishes it under "<name>/nccl_id" in `store`. `device` is the CUDA ordinal.
absl::StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(const std::string& name, c10d::Store& store,
                                                                   int rank, int size, int device);

// OK when CUDA device `device` exists and can be made current; otherwise why not (no driver,
// no device, an ordinal past the visible count). Cheap, local, no collective.
absl::Status CheckCudaDevice(int device);

// "NCCL 2.28.9" (the library's own version), for logs and the CUDA self-check.
std::string NcclVersionString();

}  // namespace magi

#endif  // MAGI_PARALLEL_NCCL_COMMUNICATOR_H_
