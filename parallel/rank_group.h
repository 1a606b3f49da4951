// Joining a group of rank processes: rendezvous through c10d's TCPStore with torchrun's
// environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK), then one
// communicator per parallel dimension. Ranks are ordered tp-inner as in the reference
// (global = tp_rank + cp_rank * tp), so a TP group is consecutive ranks and a CP group
// strides by tp.
//
// Backends: with CollectiveBackend::kGloo every group is Gloo (CPU tensors; Debian's
// LibTorch). With kNccl the TP and CP groups are direct NCCL communicators on this rank's GPU
// (parallel/nccl_communicator.h; the unique ids travel through the same TCPStore), and the
// world group stays Gloo for control messages (job metadata, barriers; a CUDA tensor given to
// it is staged through host memory). A peer monitor (heartbeats through the store) turns a
// rank that died or hangs into a clear error on every other rank within `timeout`.
#ifndef MAGI_PARALLEL_RANK_GROUP_H_
#define MAGI_PARALLEL_RANK_GROUP_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "parallel/communicator.h"
#include "parallel/layout.h"

namespace magi {

enum class CollectiveBackend {
  kGloo,  // every group Gloo: CPU tensors
  kNccl,  // TP and CP groups NCCL (CUDA tensors on cuda_device); the world group Gloo
};

// "gloo" or "nccl"; anything else is an InvalidArgument naming the allowed values.
absl::StatusOr<CollectiveBackend> ParseCollectiveBackend(absl::string_view name);
const char* CollectiveBackendName(CollectiveBackend backend);

// Whether this build has the NCCL communicator (configured with MAGI_WITH_CUDA and the CUDA
// toolkit). Whether a GPU is there is another question, answered when a group is joined.
bool NcclCompiledIn();

struct RendezvousOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  // Heartbeat timeout: a peer silent for this long is declared gone (and the collective
  // timeout too, unless collective_timeout is set).
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
  // How long one collective may wait; longer than `timeout` for ranks that idle in a
  // broadcast until the next job arrives (dead peers are still caught by the heartbeats).
  std::chrono::milliseconds collective_timeout = std::chrono::milliseconds(0);
  // How long Join waits for the rendezvous (every rank of the group reachable): long for
  // multi-node groups whose pods start minutes apart (image pulls, scheduling). Ranks other
  // than 0 keep retrying to connect to MASTER_ADDR:MASTER_PORT until this deadline; every
  // rank logs what it waits for every `rendezvous_retry`.
  std::chrono::milliseconds rendezvous_timeout = std::chrono::seconds(1800);
  std::chrono::milliseconds rendezvous_retry = std::chrono::seconds(30);
  // Backend of the TP and CP groups (the world group is always Gloo).
  CollectiveBackend backend = CollectiveBackend::kGloo;
  // kNccl: the CUDA ordinal this rank's communicators use; -1 means local_rank (one process
  // per GPU, as torchrun starts them).
  int cuda_device = -1;
};

// Reads MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK (and MAGI_DIST_TIMEOUT_S,
// MAGI_RENDEZVOUS_TIMEOUT_S).
// Missing variables default to a single rank; malformed ones are errors naming the variable.
absl::StatusOr<RendezvousOptions> RendezvousFromEnv();

class RankGroup {
 public:
  // Rendezvous and build the world, TP and CP groups for a tp x cp layout
  // (world_size must equal tp * cp). Blocks until every rank has joined or the timeout.
  // kNccl fails with FailedPrecondition when the build has no NCCL, and with Unavailable
  // (naming the group and the CUDA device) when the device or NCCL cannot be initialised;
  // a group of one never initialises NCCL (but still needs a build that has it).
  // `cfg` > 1 adds CFG-parallel replicas outermost (world_size = cfg * tp * cp): rank r is
  // model rank r % (tp * cp) of replica r / (tp * cp), and the cfg group joins the ranks that
  // hold the same model shard (spec parallel.md §3; the engine's EngineOptions::cfg_comm).
  // `job_slots` > 1 (several jobs per group, each on every rank at once) adds a job channel
  // per extra slot, each a Gloo group of the whole world, so a slot's job metadata and
  // agreements never meet another slot's in one collective sequence; the forward-order
  // channel of each CFG replica (its tp x cp ranks: the replicas run different guidance
  // passes, so each orders its own forwards); and with cfg > 1 a CFG channel per extra slot
  // (a slot's guidance exchanges and cache mirror never meet another's). With kNccl and
  // job_slots > 1 the CFG channels are Gloo too (CUDA tensors staged through host memory):
  // NCCL collectives that several job threads issue on one stream could queue in opposite
  // orders on two ranks and wait on each other.
  static absl::StatusOr<std::unique_ptr<RankGroup>> Join(const RendezvousOptions& options, int tp, int cp,
                                                         int cfg = 1, int job_slots = 1);
  ~RankGroup();
  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;

  const ShardLayout& layout() const { return layout_; }
  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  Communicator& world() { return *world_; }
  Communicator& tp() { return *tp_; }
  Communicator& cp() { return *cp_; }
  // The CFG-parallel group (one rank when cfg is 1); job slot 0's CFG channel.
  Communicator& cfg() { return *cfg_; }
  // The CFG channel of job slot `slot` in [0, job_slots): the same ranks as cfg().
  Communicator& cfg_channel(int slot) { return slot == 0 ? *cfg_ : *cfg_slots_[static_cast<size_t>(slot) - 1]; }
  int cfg_rank() const { return cfg_rank_; }
  // The channel of job slot `slot` in [0, job_slots): slot 0's is world().
  Communicator& job_channel(int slot) { return slot == 0 ? *world_ : *slots_[static_cast<size_t>(slot) - 1]; }
  int job_slots() const { return 1 + static_cast<int>(slots_.size()); }
  // Where this CFG replica's leader (its model rank 0) announces which jobs' calls share each
  // forward (ForwardOrder): the replica's tp x cp ranks; one rank when job_slots is 1.
  Communicator& forward_order() { return *order_; }

  // Starts the heartbeat monitor: when a peer stops beating for `timeout`, the process
  // prints "rank K stopped responding" (or that the store on rank 0 is gone) and exits
  // with code 3 instead of hanging in a collective.
  void StartPeerMonitor();

 private:
  struct Impl;
  RankGroup() = default;
  RendezvousOptions options_;
  ShardLayout layout_;
  std::unique_ptr<Communicator> world_, tp_, cp_, cfg_, order_;
  std::vector<std::unique_ptr<Communicator>> slots_;      // job slots 1..job_slots-1
  std::vector<std::unique_ptr<Communicator>> cfg_slots_;  // their CFG channels
  int cfg_rank_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace magi

#endif  // MAGI_PARALLEL_RANK_GROUP_H_
