// bench_parallel: tensor and context parallelism of the DiT over real rank processes (Gloo
// on loopback), on the medium config of bench_dit_forward (hidden 1024, 8 layers, 8 heads /
// 4 groups, GLU, window 4 x (6x12x20) tokens, fp32).
//
// For TP=1 (baseline), TP=2 and CP=2 it prints the forward time and, per collective, the
// bytes each rank put on the wire per layer measured at run time divided by the analytic
// volume of spec parallel.md §2.2-2.3 (ring all-reduce 2(t-1)/t of the buffer; Ulysses
// (S/c)(c-1)/c x row bytes for q, kv (G' = max(G, c) groups) and out; all-gather of the
// final projection (c-1)/c x S x P x 4). Every ratio must print 1.00.
// Usage: bench_parallel [--layers N] [--reps N]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "bench/bench_util.h"
#include "bench/medium_dit.h"
#include "parallel/local_launcher.h"
#include "parallel/rank_group.h"
#include "worker/model/checkpoint.h"
#include "worker/model/dit.h"
#include "worker/model/random_checkpoint.h"

namespace magi {
namespace {

constexpr int kChunks = kMediumChunks, kChunkFrames = kMediumChunkFrames, kTokH = kMediumTokH, kTokW = kMediumTokW;

ModelConfig Medium(int layers) { return MediumDitConfig(layers, ParamsDtype::kFloat32, 1024, 128); }

// One rank of a launched group: load, forward, write rank 0's timing and stats to a file.
int RunRank(int tp, int cp, const std::string& ckpt_path, const std::string& out_path, int layers, int reps) {
  auto rdv = RendezvousFromEnv();
  if (!rdv.ok()) return std::fprintf(stderr, "%s\n", std::string(rdv.status().message()).c_str()), 1;
  auto group = RankGroup::Join(*rdv, tp, cp);
  if (!group.ok()) return std::fprintf(stderr, "%s\n", std::string(group.status().message()).c_str()), 1;
  at::set_num_threads(std::max(1, 2 / (tp * cp)));
  const ModelConfig m = Medium(layers);
  auto ckpt = Checkpoint::Open(ckpt_path);
  DitModel::Options o;
  o.layout = (*group)->layout();
  o.tp_comm = &(*group)->tp();
  o.cp_comm = &(*group)->cp();
  auto model = DitModel::Load(m, **ckpt, o);
  if (!model.ok()) return std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str()), 1;
  DitForwardArgs a = MediumWindowArgs(m, 64);
  (void)(*model)->Forward(a);  // warm-up: pages in the weights
  (*group)->tp().stats().Clear();
  (*group)->cp().stats().Clear();
  (void)(*group)->world().Barrier();
  const double t0 = NowSeconds();
  for (int r = 0; r < reps; ++r) {
    auto out = (*model)->Forward(a);
    if (!out.ok()) return std::fprintf(stderr, "%s\n", std::string(out.status().message()).c_str()), 1;
  }
  const double sec = (NowSeconds() - t0) / reps;
  if ((*group)->rank() == 0) {
    nlohmann::json j;
    j["seconds"] = sec;
    for (Communicator* c : {&(*group)->tp(), &(*group)->cp()}) {
      for (const auto& [op, e] : c->stats().by_op) j["bytes"][op] = static_cast<double>(e.wire_bytes) / reps;
    }
    std::ofstream(out_path) << j.dump();
  }
  return 0;
}

int Orchestrate(int layers, int reps) {
  const ModelConfig m = Medium(layers);
  const std::string dir = (std::filesystem::temp_directory_path() / ("magi_bench_par_" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  const std::string ckpt = dir + "/model.safetensors";
  if (auto s = WriteRandomDitCheckpoint(m, ckpt); !s.ok()) return std::fprintf(stderr, "%s\n", std::string(s.message()).c_str()), 1;
  std::printf("bench_parallel: hidden 1024, %d layers, 8 heads / 4 groups, GLU, fp32, window 4 x (6x12x20) = %d tokens, "
              "2 cores shared by all ranks, %d rep(s)\n", layers, kChunks * kChunkFrames * kTokH * kTokW, reps);
  const double S = double{kChunks} * kChunkFrames * kTokH * kTokW, D = m.hidden_size, d = m.kv_channels;
  const double Hq = m.num_attention_heads, G = m.num_query_groups, P = 4.0 * m.out_channels;
  double base = 0;
  for (auto [tp, cp] : std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {1, 2}}) {
    const std::string out = dir + "/result.json";
    std::filesystem::remove(out);
    LaunchOptions lo;
    lo.world_size = tp * cp;
    lo.env = {"MAGI_BENCH_RANK=1", "MAGI_BENCH_TP=" + std::to_string(tp), "MAGI_BENCH_CP=" + std::to_string(cp),
              "MAGI_BENCH_CKPT=" + ckpt, "MAGI_BENCH_OUT=" + out, "MAGI_BENCH_LAYERS=" + std::to_string(layers),
              "MAGI_BENCH_REPS=" + std::to_string(reps)};
    auto st = RunLocalGroup({std::filesystem::canonical("/proc/self/exe").string()}, lo);
    if (!st.ok()) return std::fprintf(stderr, "tp %d cp %d: %s\n", tp, cp, std::string(st.message()).c_str()), 1;
    std::ifstream in(out);
    nlohmann::json j = nlohmann::json::parse(in);
    const double sec = j["seconds"].get<double>();
    if (tp == 1 && cp == 1) base = sec;
    std::printf("TP=%d CP=%d: forward %.2f s, %.2fx the TP=1 time\n", tp, cp, sec, sec / base);
    std::map<std::string, double> analytic;
    const double b = 4;  // fp32 model: activations and reductions in fp32
    if (tp > 1) {
      analytic["tp.allreduce.proj"] = 2.0 * (tp - 1) / tp * S * D * 4 * layers;
      analytic["tp.allreduce.fc2"] = 2.0 * (tp - 1) / tp * S * D * 4 * layers;
    }
    if (cp > 1) {
      const double share = (S / cp) * (cp - 1.0) / cp;
      analytic["cp.alltoall.q"] = share * Hq * d * b * layers;
      analytic["cp.alltoall.out"] = share * Hq * d * b * layers;
      analytic["cp.alltoall.kv"] = share * 2 * std::max<double>(G, cp) * d * b * layers;
      analytic["cp.allgather.out"] = (cp - 1.0) / cp * S * P * 4;
    }
    for (const auto& [op, want] : analytic) {
      const double got = j["bytes"].contains(op) ? j["bytes"][op].get<double>() : 0.0;
      std::printf("  %-18s measured %10.2f MB per forward (%8.3f MB per layer), analytic %10.2f MB: ratio %.2f\n",
                  op.c_str(), got / 1e6, got / 1e6 / (op == "cp.allgather.out" ? 1 : layers), want / 1e6, got / want);
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace magi

int main(int argc, char** argv) {
  auto env_int = [](const char* k, int fallback) {
    const char* v = std::getenv(k);
    return v ? std::atoi(v) : fallback;
  };
  if (std::getenv("MAGI_BENCH_RANK") != nullptr) {
    return magi::RunRank(env_int("MAGI_BENCH_TP", 1), env_int("MAGI_BENCH_CP", 1), std::getenv("MAGI_BENCH_CKPT"),
                         std::getenv("MAGI_BENCH_OUT"), env_int("MAGI_BENCH_LAYERS", 8), env_int("MAGI_BENCH_REPS", 1));
  }
  int layers = 8, reps = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--layers")) layers = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  }
  return magi::Orchestrate(layers, reps);
}
