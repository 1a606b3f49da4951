// rank_probe MODE: one rank of a test group (launched with torchrun-style variables).
//   collectives  checks all-reduce, all-gather, all-to-all (uneven), broadcast with fp32 and
//                bf16 tensors and the byte accounting; exits 0 when every check holds.
//   die          rank 1 exits with code 7 right after joining; the others enter an
//                all-reduce and must fail instead of hanging.
//   hang         rank 1 stops itself (SIGSTOP); the others must give up within the timeout.
//   nccl         joins with the nccl backend (TP = the whole group). With a CUDA LibTorch and
//                one GPU per rank: the collectives checks on the NCCL TP group (CUDA tensors,
//                fp32 and bf16) and on the Gloo world group (CUDA tensors staged through the
//                host). Without a GPU per rank: Join must fail on every rank naming the nccl
//                backend and CUDA (not fall back to Gloo, not hang). Prints which of the two ran.
//   nccl1        a one-rank NCCL communicator on cuda:0 (a single GPU is enough): the
//                collectives checks on it; without a GPU, the clear error is checked instead.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <ATen/ATen.h>

#include "parallel/rank_group.h"
#ifdef MAGI_HAVE_NCCL
#include <cuda_runtime.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "parallel/nccl_communicator.h"
#endif

namespace {

int Check(bool ok, const char* what, int rank) {
  if (!ok) std::fprintf(stderr, "rank %d: check failed: %s\n", rank, what);
  return ok ? 0 : 1;
}

int Collectives(magi::Communicator& w, at::Device device = at::kCPU) {
  const int r = w.rank(), n = w.size();
  int bad = 0;
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    at::Tensor x = at::full({4, 3}, static_cast<float>(r + 1)).to(device, dt);
    bad += Check(w.AllReduceSum(x, "test.allreduce").ok(), "all-reduce ok", r);
    bad += Check(x.to(at::kFloat).eq(n * (n + 1) / 2.0f).all().item<bool>(), "all-reduce value", r);
    bad += Check(x.scalar_type() == dt, "all-reduce keeps dtype", r);
    // Rank k contributes k + 1 rows filled with k.
    std::vector<int64_t> rows;
    for (int k = 0; k < n; ++k) rows.push_back(k + 1);
    at::Tensor mine = at::full({r + 1, 2}, static_cast<float>(r)).to(device, dt), all;
    bad += Check(w.AllGather(mine, rows, &all, "test.allgather").ok(), "all-gather ok", r);
    bad += Check(all.size(0) == n * (n + 1) / 2 && all.scalar_type() == dt && all.device() == device,
                 "all-gather shape, dtype and device", r);
    int64_t row = 0;
    for (int k = 0; k < n; ++k) {
      bad += Check(all.narrow(0, row, k + 1).to(at::kFloat).eq(k).all().item<bool>(), "all-gather order", r);
      row += k + 1;
    }
    // Uneven all-to-all: rank r sends (dst + 1) rows of value 100 r + dst to dst.
    std::vector<int64_t> send, recv;
    std::vector<at::Tensor> parts;
    for (int dst = 0; dst < n; ++dst) {
      send.push_back(dst + 1);
      recv.push_back(r + 1);
      parts.push_back(at::full({dst + 1, 2}, static_cast<float>(100 * r + dst)));
    }
    at::Tensor out;
    bad += Check(w.AllToAll(at::cat(parts).to(device, dt), send, recv, &out, "test.alltoall").ok(), "all-to-all ok", r);
    bad += Check(out.device() == device, "all-to-all device", r);
    row = 0;
    for (int src = 0; src < n; ++src) {
      bad += Check(out.narrow(0, row, r + 1).to(at::kFloat).eq(100 * src + r).all().item<bool>(), "all-to-all", r);
      row += r + 1;
    }
    at::Tensor b = at::full({5}, r == 0 ? 42.0f : -1.0f).to(device, dt);
    bad += Check(w.Broadcast(b, 0, "test.broadcast").ok(), "broadcast ok", r);
    bad += Check(b.to(at::kFloat).eq(42.0f).all().item<bool>(), "broadcast value", r);
  }
  // Ring all-reduce volume 2 (n - 1) / n of the buffer: fp32 [4, 3] and bf16 [4, 3].
  const auto& e = w.stats().by_op.at("test.allreduce");
  bad += Check(e.calls == 2 && e.wire_bytes == 2 * (n - 1) * (48 + 24) / n, "all-reduce bytes", r);
  const auto& a2a = w.stats().by_op.at("test.alltoall");
  int64_t rows_out = 0;
  for (int dst = 0; dst < n; ++dst) rows_out += dst == r ? 0 : dst + 1;
  bad += Check(a2a.wire_bytes == rows_out * (8 + 4), "all-to-all bytes", r);
  return bad == 0 ? 0 : 1;
}

int CudaDevices() {
#ifdef MAGI_HAVE_NCCL
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
#else
  return 0;
#endif
}

// Without a GPU the nccl backend must refuse with a message naming the group and CUDA.
int ExpectNoGpuError(const absl::Status& st, const char* group, int rank) {
  const std::string m(st.message());
  const bool clear = !st.ok() && m.find(group) != std::string::npos &&
                     (m.find("CUDA") != std::string::npos || m.find("MAGI_WITH_CUDA") != std::string::npos);
  if (!clear) {
    std::fprintf(stderr, "rank %d: without a GPU the nccl backend must fail naming '%s' and CUDA; got: %s\n", rank,
                 group, st.ToString().c_str());
    return 1;
  }
  std::printf("rank %d: no GPU here, the nccl backend refused as it must: %s\n", rank, m.c_str());
  return 0;
}

int Nccl(magi::RendezvousOptions rdv) {
  rdv.backend = magi::CollectiveBackend::kNccl;
  const bool gpus = CudaDevices() >= rdv.world_size;
  auto g = magi::RankGroup::Join(rdv, rdv.world_size, 1);
  if (!gpus) return ExpectNoGpuError(g.status(), "nccl backend", rdv.rank);
  if (!g.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", rdv.rank, g.status().ToString().c_str());
    return 1;
  }
  const int r = (*g)->rank();
  if (!at::hasCUDA()) {
    // Debian's LibTorch on a GPU machine: NCCL is up but no CUDA tensor can exist.
    at::Tensor x = at::ones({2});
    absl::Status st = (*g)->tp().AllReduceSum(x, "cpu");
    std::printf("rank %d: NCCL groups built; this LibTorch has no CUDA, a CPU tensor is refused: %s\n", r,
                st.ToString().c_str());
    return Check(absl::IsInvalidArgument(st), "a CPU tensor is refused by NCCL", r);
  }
  const at::Device dev(at::kCUDA, static_cast<c10::DeviceIndex>(rdv.local_rank));
  int bad = Collectives((*g)->tp(), dev);
  bad += Collectives((*g)->world(), dev);
  std::printf("rank %d: NCCL tp group and Gloo world group on %s: %s\n", r, dev.str().c_str(), bad ? "FAIL" : "ok");
  return bad == 0 ? 0 : 1;
}

int NcclSingle() {
#ifdef MAGI_HAVE_NCCL
  auto store = c10::make_intrusive<c10d::HashStore>();
  auto comm = magi::MakeNcclCommunicator("solo", *store, 0, 1, 0);
  if (CudaDevices() == 0) return ExpectNoGpuError(comm.status(), "solo", 0);
  if (!comm.ok()) {
    std::fprintf(stderr, "%s\n", comm.status().ToString().c_str());
    return 1;
  }
  if (!at::hasCUDA()) {
    at::Tensor x = at::ones({2});
    return Check(absl::IsInvalidArgument((*comm)->AllReduceSum(x, "cpu")), "a CPU tensor is refused by NCCL", 0);
  }
  const int bad = Collectives(**comm, at::Device(at::kCUDA, 0));
  std::printf("one-rank NCCL communicator on cuda:0 (%s): %s\n", magi::NcclVersionString().c_str(),
              bad ? "FAIL" : "ok");
  return bad == 0 ? 0 : 1;
#else
  magi::RendezvousOptions o;
  o.backend = magi::CollectiveBackend::kNccl;
  return ExpectNoGpuError(magi::RankGroup::Join(o, 1, 1).status(), "nccl backend", 0);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "collectives";
  auto rdv = magi::RendezvousFromEnv();
  if (!rdv.ok()) {
    std::fprintf(stderr, "%s\n", std::string(rdv.status().message()).c_str());
    return 2;
  }
  if (mode == "nccl") return Nccl(*rdv);
  if (mode == "nccl1") return NcclSingle();
  auto g = magi::RankGroup::Join(*rdv, rdv->world_size, 1);
  if (!g.ok()) {
    std::fprintf(stderr, "%s\n", std::string(g.status().message()).c_str());
    return 2;
  }
  (*g)->StartPeerMonitor();
  const int r = (*g)->rank();
  if (mode == "collectives") return Collectives((*g)->world());
  if (mode == "die" && r == 1) std::_Exit(7);
  if (mode == "hang" && r == 1) ::raise(SIGSTOP);
  at::Tensor x = at::ones({8});
  auto st = (*g)->world().AllReduceSum(x, "probe");
  if (!st.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", r, std::string(st.message()).c_str());
    return 4;
  }
  std::fprintf(stderr, "rank %d: all-reduce unexpectedly succeeded\n", r);
  return 0;
}
