// rank_probe MODE: one rank of a test group (launched with torchrun-style variables).
//   collectives  checks all-reduce, all-gather, all-to-all (uneven), broadcast with fp32 and
//                bf16 tensors and the byte accounting; exits 0 when every check holds.
//   die          rank 1 exits with code 7 right after joining; the others enter an
//                all-reduce and must fail instead of hanging.
//   hang         rank 1 stops itself (SIGSTOP); the others must give up within the timeout.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <ATen/ATen.h>

#include "parallel/rank_group.h"

namespace {

int Check(bool ok, const char* what, int rank) {
  if (!ok) std::fprintf(stderr, "rank %d: check failed: %s\n", rank, what);
  return ok ? 0 : 1;
}

int Collectives(magi::RankGroup& g) {
  magi::Communicator& w = g.world();
  const int r = w.rank(), n = w.size();
  int bad = 0;
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    at::Tensor x = at::full({4, 3}, static_cast<float>(r + 1)).to(dt);
    bad += Check(w.AllReduceSum(x, "test.allreduce").ok(), "all-reduce ok", r);
    bad += Check(x.to(at::kFloat).eq(n * (n + 1) / 2.0f).all().item<bool>(), "all-reduce value", r);
    bad += Check(x.scalar_type() == dt, "all-reduce keeps dtype", r);
    // Rank k contributes k + 1 rows filled with k.
    std::vector<int64_t> rows;
    for (int k = 0; k < n; ++k) rows.push_back(k + 1);
    at::Tensor mine = at::full({r + 1, 2}, static_cast<float>(r)).to(dt), all;
    bad += Check(w.AllGather(mine, rows, &all, "test.allgather").ok(), "all-gather ok", r);
    bad += Check(all.size(0) == n * (n + 1) / 2 && all.scalar_type() == dt, "all-gather shape", r);
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
    bad += Check(w.AllToAll(at::cat(parts).to(dt), send, recv, &out, "test.alltoall").ok(), "all-to-all ok", r);
    row = 0;
    for (int src = 0; src < n; ++src) {
      bad += Check(out.narrow(0, row, r + 1).to(at::kFloat).eq(100 * src + r).all().item<bool>(), "all-to-all", r);
      row += r + 1;
    }
    at::Tensor b = at::full({5}, r == 0 ? 42.0f : -1.0f).to(dt);
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

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "collectives";
  auto rdv = magi::RendezvousFromEnv();
  if (!rdv.ok()) {
    std::fprintf(stderr, "%s\n", std::string(rdv.status().message()).c_str());
    return 2;
  }
  auto g = magi::RankGroup::Join(*rdv, rdv->world_size, 1);
  if (!g.ok()) {
    std::fprintf(stderr, "%s\n", std::string(g.status().message()).c_str());
    return 2;
  }
  (*g)->StartPeerMonitor();
  const int r = (*g)->rank();
  if (mode == "collectives") return Collectives(**g);
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
