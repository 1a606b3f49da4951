// A Communicator straight on NCCL (nccl.h from the CUDA toolkit) for CUDA tensors, for
// builds whose LibTorch has no ProcessGroupNCCL. The ncclUniqueId travels through the same
// c10d store as the rendezvous. Built only with MAGI_WITH_CUDA; CI compiles and links it.
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

// "NCCL 2.28.9" (the library's own version), for logs and the CUDA self-check.
std::string NcclVersionString();

}  // namespace magi

#endif  // MAGI_PARALLEL_NCCL_COMMUNICATOR_H_
