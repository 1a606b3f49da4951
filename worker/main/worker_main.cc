// magi-worker: one worker group's leader process. Dials magi-server, registers, runs the
// jobs it is assigned and streams their chunks back. See worker/main/worker_link.h.
//
//   magi-worker --server=127.0.0.1:50051 --worker-token-file=FILE [--group-id=gpu0] [--runner=synthetic]
//   magi-worker --server=... --runner=model --model-dir=DIR [--create-tiny-model]
//   magi-worker --server=... --runner=model --model-dir=DIR --tp=2 --cp=2 [--nproc_per_node=4]
//       [--nnodes=N --node_rank=R --master_addr=HOST --master_port=P] [--device=cpu|cuda]
//       [--backend=gloo|nccl]
// With tp x cp > 1 the process is a launcher: it starts this node's ranks (torchrun-style
// MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE / LOCAL_RANK) and waits for them; rank 0
// leads the group (dials the server), the other ranks follow it (rank_group_runner.h).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <vector>

#include <ATen/Context.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/dashed_flags.h"
#include "base/worker_token.h"
#include "parallel/local_launcher.h"
#include "parallel/rank_group.h"
#include "worker/main/rank_group_runner.h"
#include "worker/main/worker_health.h"
#include "worker/main/worker_link.h"
#include "worker/model/device.h"
#include "worker/runner/runner_factory.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "magi-server address to dial");
ABSL_FLAG(std::string, worker_token_file, "",
          "file with the worker token the server requires (first non-comment line; re-read at every "
          "reconnect); magi-server --local_workers passes its own");
ABSL_FLAG(std::string, group_id, "worker", "name of this worker group (logs, metrics)");
ABSL_FLAG(std::string, runner, "synthetic",
          "synthetic (test patterns, for tests and development) or model (MAGI-1)");
ABSL_FLAG(int, synthetic_step_ms, 5, "synthetic runner: milliseconds per simulated step");
ABSL_FLAG(int, synthetic_hang_after_steps, 0,
          "tests only: the synthetic runner's job hangs for good after this many steps (stall watchdog tests)");
ABSL_FLAG(int, drain_timeout_seconds, 50,
          "on SIGTERM: how long the job in progress may take to finish its current chunk before the worker "
          "leaves the server (keep it under the pod's terminationGracePeriodSeconds)");
ABSL_FLAG(int, step_timeout_seconds, 600,
          "stall watchdog: a running job with no finished step for this long marks the worker stalled "
          "(/healthz and /readyz 503), ends the stream so the server re-queues the job, and exits 3; 0: off");
ABSL_FLAG(std::string, model_dir, "", "model runner: folder with the model's config and weights");
ABSL_FLAG(std::string, model_name, "",
          "model runner: the model name this group registers (the server's catalog key, [A-Za-z0-9._-]{1,64}); "
          "default: config.json serving_config.name, else the --model_dir folder's basename");
ABSL_FLAG(bool, create_tiny_model, false,
          "model runner: generate the embedded 'tiny' model set in --model_dir if it is missing");
ABSL_FLAG(bool, overlap_decode, true,
          "model runner: decode and stream each clean chunk on a thread of its own while the DiT computes the "
          "next stage (false: between model calls, on the engine's thread)");
ABSL_FLAG(int64_t, lead_kv_budget_mb, magi::kDefaultLeadKvBudgetMb,
          "model runner, stream-first schedule: MiB for recording the first chunk's K/V that later chunks read; "
          "the steps that do not fit are recomputed, one extra chunk-forward each (0: recompute all, bounded "
          "memory; -1: record all, the fastest; docs/schedule.md)");
ABSL_FLAG(int, max_jobs_per_group, 1,
          "jobs this worker group runs at once, in [1, 16] (the slots it registers); with the model runner their "
          "DiT calls of the same window shape share one batched forward and the rest interleave; on a rank group "
          "every rank runs the jobs in the same slots and each CFG replica's first rank orders its forwards");
ABSL_FLAG(bool, reconnect, true, "reconnect when the stream to the server ends");
ABSL_FLAG(int, tp, 1, "tensor-parallel ranks of this worker group (divides 8 and the model's heads/groups)");
ABSL_FLAG(int, cp, 1, "context-parallel (Ulysses) ranks of this worker group");
ABSL_FLAG(int, cfg, 1,
          "CFG-parallel replicas of this worker group (1, 2 or 3; cfg_number 3 models only): each holds the tp x cp "
          "model and runs a share of the three guidance passes per step (spec parallel.md §3)");
ABSL_FLAG(int, nproc_per_node, 0, "ranks started on this node (default: all cfg x tp x cp)");
ABSL_FLAG(int, nnodes, 1, "nodes the group spans");
ABSL_FLAG(int, node_rank, 0, "this node's index in [0, nnodes)");
ABSL_FLAG(std::string, master_addr, "127.0.0.1", "rendezvous host (rank 0's node)");
ABSL_FLAG(int, master_port, 0, "rendezvous port (0: pick a free one; single node only)");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda (cuda needs a LibTorch built with CUDA)");
ABSL_FLAG(std::string, backend, "gloo", "collectives backend: gloo (CPU tensors) or nccl (CUDA tensors)");
ABSL_FLAG(std::string, http_listen, "",
          "serve /healthz and /readyz on this address (\"0.0.0.0:8081\"); empty: off. In a rank group "
          "each node's first rank serves them (ready once the model is loaded and, on the leader, the group "
          "is registered with the server)");
ABSL_FLAG(int, dist_timeout_seconds, 60, "a rank silent this long makes the whole group exit");
ABSL_FLAG(int, rendezvous_timeout_seconds, 1800,
          "how long the ranks wait for each other at start (multi-node pods start minutes apart); ranks "
          "other than 0 retry every 30 s and log what they wait for");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("magi-worker --server=ADDR [--runner=synthetic|model]");
  magi::DashesToUnderscores(argc, argv);
  absl::ParseCommandLine(argc, argv);
  // Checked before anything starts (and before a launcher forks ranks): a worker that cannot
  // authenticate would only be refused by the server again and again.
  if (auto tokens = magi::ReadWorkerTokenFile(absl::GetFlag(FLAGS_worker_token_file)); !tokens.ok()) {
    std::fprintf(stderr, "magi-worker: %s\n", std::string(tokens.status().message()).c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_synthetic_step_ms) < 0 || absl::GetFlag(FLAGS_synthetic_step_ms) > 60000) {
    std::fprintf(stderr, "magi-worker: --synthetic-step-ms: %d is out of range; allowed [0, 60000]\n",
                 absl::GetFlag(FLAGS_synthetic_step_ms));
    return 2;
  }
  const int tp = absl::GetFlag(FLAGS_tp), cp = absl::GetFlag(FLAGS_cp), cfg = absl::GetFlag(FLAGS_cfg);
  const int nnodes = absl::GetFlag(FLAGS_nnodes), node_rank = absl::GetFlag(FLAGS_node_rank);
  if (tp < 1 || tp > 64 || cp < 1 || cp > 64) {
    std::fprintf(stderr, "magi-worker: --tp and --cp must be in [1, 64], got %d and %d\n", tp, cp);
    return 2;
  }
  if (cfg < 1 || cfg > 3) {
    std::fprintf(stderr, "magi-worker: --cfg must be 1, 2 or 3 (CFG-parallel replicas), got %d\n", cfg);
    return 2;
  }
  const int world = cfg * tp * cp;
  const int max_jobs = absl::GetFlag(FLAGS_max_jobs_per_group);
  if (max_jobs < 1 || max_jobs > magi::kMaxConcurrentJobs) {
    std::fprintf(stderr, "magi-worker: --max_jobs_per_group: %d is out of range; allowed [1, %d]\n", max_jobs,
                 magi::kMaxConcurrentJobs);
    return 2;
  }
  int nproc = absl::GetFlag(FLAGS_nproc_per_node);
  if (nproc == 0) nproc = world / std::max(1, nnodes);
  if (nnodes < 1 || node_rank < 0 || node_rank >= nnodes || nproc < 1 || nproc * nnodes != world) {
    std::fprintf(stderr,
                 "magi-worker: --nproc_per_node (%d) x --nnodes (%d) must equal --cfg x --tp x --cp (%d), and --node_rank "
                 "(%d) must be in [0, nnodes)\n", nproc, nnodes, world, node_rank);
    return 2;
  }
  const std::string device = absl::GetFlag(FLAGS_device), backend = absl::GetFlag(FLAGS_backend);
  if (auto d = magi::ParseDevice("--device", device, /*allow_index=*/false); !d.ok()) {
    // Each rank takes cuda:LOCAL_RANK; the flag names the kind only.
    std::fprintf(stderr, "magi-worker: %s\n", std::string(d.status().message()).c_str());
    return 2;
  }
  if (backend != "gloo" && backend != "nccl") {
    std::fprintf(stderr, "magi-worker: --backend must be gloo or nccl, got '%s'\n", backend.c_str());
    return 2;
  }
  if (backend == "nccl" && device != "cuda") {
    std::fprintf(stderr, "magi-worker: --backend=nccl moves CUDA tensors; use --device=cuda, or --backend=gloo on CPU\n");
    return 2;
  }
  if (world > 1 && backend == "nccl" && !magi::NcclCompiledIn()) {
    // Refuse rather than move CUDA tensors through Gloo under a flag that says NCCL.
    std::fprintf(stderr, "magi-worker: --backend=nccl with --tp x --cp > 1 needs NCCL rank groups, and this "
                         "magi-worker was built without NCCL (configure with the CUDA toolkit, MAGI_WITH_CUDA=ON; "
                         "docs/gpu.md)\n");
    return 2;
  }
  if (device == "cuda" && nproc > static_cast<int>(at::getNumGPUs())) {
    std::fprintf(stderr, "magi-worker: --device=cuda: %d rank(s) on this node need as many GPUs, %d visible\n", nproc,
                 static_cast<int>(at::getNumGPUs()));
    return 2;
  }
  if (world > 1 && std::getenv("WORLD_SIZE") == nullptr) {
    // Launcher: this node's ranks are this same command with torchrun-style variables.
    magi::LaunchOptions launch;
    launch.world_size = world;
    launch.local_ranks = nproc;
    launch.first_rank = node_rank * nproc;
    launch.master_addr = absl::GetFlag(FLAGS_master_addr);
    launch.master_port = absl::GetFlag(FLAGS_master_port);
    launch.quiet_followers = false;
    const int rendezvous_s = absl::GetFlag(FLAGS_rendezvous_timeout_seconds);
    if (rendezvous_s < 1 || rendezvous_s > 7 * 86400) {
      std::fprintf(stderr, "magi-worker: --rendezvous_timeout_seconds: %d is out of range; allowed [1, 604800]\n",
                   rendezvous_s);
      return 2;
    }
    launch.env = {absl::StrCat("MAGI_DIST_TIMEOUT_S=", absl::GetFlag(FLAGS_dist_timeout_seconds)),
                  absl::StrCat("MAGI_RENDEZVOUS_TIMEOUT_S=", rendezvous_s)};
    std::vector<std::string> args = {std::filesystem::canonical("/proc/self/exe").string()};
    for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
    absl::Status st = magi::RunLocalGroup(args, launch);
    if (!st.ok()) std::fprintf(stderr, "magi-worker: worker group: %s\n", std::string(st.message()).c_str());
    return st.ok() ? 0 : 1;
  }
  // Probes: served from before the model loads (so /healthz answers during a long load) by
  // this node's first rank, or by the single process.
  magi::WorkerHealth health;
  const char* local_rank = std::getenv("LOCAL_RANK");
  const bool serves_probes = local_rank == nullptr || std::string(local_rank) == "0";
  if (!absl::GetFlag(FLAGS_http_listen).empty() && serves_probes) {
    auto port = health.Serve(absl::GetFlag(FLAGS_http_listen));
    if (!port.ok()) {
      std::fprintf(stderr, "magi-worker: %s\n", std::string(port.status().message()).c_str());
      return 2;
    }
    std::fprintf(stderr, "magi-worker: /healthz and /readyz on port %d\n", *port);
  }
  magi::RunnerOptions ro;
  ro.runner = absl::GetFlag(FLAGS_runner);
  ro.synthetic_step_delay = absl::Milliseconds(absl::GetFlag(FLAGS_synthetic_step_ms));
  ro.synthetic_hang_after_steps = absl::GetFlag(FLAGS_synthetic_hang_after_steps);
  ro.model_dir = absl::GetFlag(FLAGS_model_dir);
  ro.create_tiny_model = absl::GetFlag(FLAGS_create_tiny_model);
  ro.model.model_name = absl::GetFlag(FLAGS_model_name);
  ro.model.overlap_decode = absl::GetFlag(FLAGS_overlap_decode);
  auto lead_kv = magi::ParseLeadKvBudgetMb("--lead_kv_budget_mb", std::to_string(absl::GetFlag(FLAGS_lead_kv_budget_mb)));
  if (!lead_kv.ok()) {
    std::fprintf(stderr, "magi-worker: %s\n", std::string(lead_kv.status().message()).c_str());
    return 2;
  }
  ro.model.lead_kv_budget_bytes = *lead_kv;
  ro.max_concurrent_jobs = max_jobs;
  // torchrun's variables (a single rank without them): LOCAL_RANK picks this rank's GPU.
  auto rdv = magi::RendezvousFromEnv();
  if (!rdv.ok()) {
    std::fprintf(stderr, "magi-worker: %s\n", std::string(rdv.status().message()).c_str());
    return 2;
  }
  if (device == "cuda") {
    const int gpus = static_cast<int>(at::getNumGPUs());
    if (rdv->local_rank < 0 || rdv->local_rank >= gpus) {
      std::fprintf(stderr,
                   "magi-worker: --device=cuda: LOCAL_RANK %d has no GPU: %d CUDA device(s) visible "
                   "(CUDA_VISIBLE_DEVICES); run at most one rank per GPU on a node (--nproc_per_node <= %d)\n",
                   rdv->local_rank, gpus, gpus);
      return 2;
    }
    ro.model.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(rdv->local_rank));
  }
  std::unique_ptr<magi::RankGroup> group;
  if (world > 1) {
    if (ro.runner != "model") {
      std::fprintf(stderr, "magi-worker: --cfg/--tp/--cp > 1 split the model's work: they need --runner=model\n");
      return 2;
    }
    // Followers wait in a broadcast between jobs: collectives may wait long; dead or hung
    // peers are caught by the heartbeats within --dist_timeout_seconds.
    rdv->collective_timeout = std::chrono::hours(24 * 7);
    // TP and CP collectives over NCCL on this rank's GPU (cuda:LOCAL_RANK), or Gloo on CPU; the
    // world group (control messages) is Gloo either way.
    auto parsed_backend = magi::ParseCollectiveBackend(backend);
    if (!parsed_backend.ok()) {
      std::fprintf(stderr, "magi-worker: --backend: %s\n", std::string(parsed_backend.status().message()).c_str());
      return 2;
    }
    rdv->backend = *parsed_backend;
    if (device == "cuda") rdv->cuda_device = rdv->local_rank;
    auto joined = magi::RankGroup::Join(*rdv, tp, cp, cfg, max_jobs);
    if (!joined.ok()) {
      std::fprintf(stderr, "magi-worker: %s\n", std::string(joined.status().message()).c_str());
      return 1;
    }
    group = std::move(*joined);
    group->StartPeerMonitor();
    ro.model.layout = group->layout();
    ro.model.tp_comm = &group->tp();
    ro.model.cp_comm = &group->cp();
    if (cfg > 1) ro.model.cfg_comm = &group->cfg();
    ro.model.group_comm = &group->world();
    if (max_jobs > 1) {
      for (int slot = 0; slot < max_jobs; ++slot) ro.model.job_channels.push_back(&group->job_channel(slot));
      ro.model.forward_order = &group->forward_order();
      if (cfg > 1) {
        for (int slot = 0; slot < max_jobs; ++slot) ro.model.cfg_channels.push_back(&group->cfg_channel(slot));
      }
    }
    ro.model.follower = group->rank() != 0;
    // Only one rank writes the shared tiny model set; the others wait for it at the barrier.
    if (group->rank() != 0) ro.create_tiny_model = false;
    if (group->rank() == 0 && ro.create_tiny_model) {
      magi::RunnerOptions first = ro;
      auto probe = magi::CreateJobRunner(first);  // generates the set if missing
      if (!probe.ok()) {
        std::fprintf(stderr, "magi-worker: %s\n", std::string(probe.status().message()).c_str());
        return 1;
      }
    }
    if (auto s = group->world().Barrier(); !s.ok()) {
      std::fprintf(stderr, "magi-worker: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  auto runner = magi::CreateJobRunner(ro);
  if (!runner.ok()) {
    std::fprintf(stderr, "magi-worker: %s\n", std::string(runner.status().message()).c_str());
    return 2;
  }
  health.SetLoaded();
  if (group != nullptr && group->rank() != 0) {
    health.SetRegistered(true);  // followers are ready once loaded; the leader registers for the group
    std::vector<magi::Communicator*> channels;
    for (int slot = 0; slot < group->job_slots(); ++slot) channels.push_back(&group->job_channel(slot));
    absl::Status s = magi::RunGroupFollower(**runner, channels);
    if (!s.ok()) std::fprintf(stderr, "magi-worker rank %d: %s\n", group->rank(), s.ToString().c_str());
    return s.ok() ? 0 : 1;
  }
  if (group != nullptr) {
    std::vector<magi::Communicator*> channels;
    for (int slot = 0; slot < group->job_slots(); ++slot) channels.push_back(&group->job_channel(slot));
    *runner = std::make_unique<magi::GroupLeaderRunner>(std::move(*runner), std::move(channels));
  }
  magi::WorkerLinkOptions lo;
  lo.server = absl::GetFlag(FLAGS_server);
  lo.group_id = absl::GetFlag(FLAGS_group_id);
  lo.token_file = absl::GetFlag(FLAGS_worker_token_file);
  lo.reconnect = absl::GetFlag(FLAGS_reconnect);
  lo.health = &health;
  if (absl::GetFlag(FLAGS_step_timeout_seconds) < 0) {
    std::fprintf(stderr, "magi-worker: --step_timeout_seconds must be >= 0, got %d\n",
                 absl::GetFlag(FLAGS_step_timeout_seconds));
    return 2;
  }
  lo.step_timeout = absl::Seconds(absl::GetFlag(FLAGS_step_timeout_seconds));
  magi::WorkerLink link(lo, runner->get());
  // SIGTERM (eviction, rolling update): drain and exit 0. The handler only writes to a pipe;
  // a thread does the rest.
  static int term_pipe[2] = {-1, -1};
  std::atomic<bool> drained{false};
  std::thread drainer;
  if (::pipe2(term_pipe, O_CLOEXEC) == 0) {
    struct sigaction sa {};
    sa.sa_handler = [](int) {
      const char c = 't';
      [[maybe_unused]] ssize_t n = ::write(term_pipe[1], &c, 1);
    };
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr);
    drainer = std::thread([&] {
      char c;
      if (::read(term_pipe[0], &c, 1) != 1 || c != 't') return;
      std::fprintf(stderr, "magi-worker: SIGTERM: draining\n");
      drained = true;
      link.Drain(absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_seconds)));
    });
  }
  absl::Status s = link.Run();
  if (drainer.joinable()) {
    if (!drained) {
      const char c = 'x';  // wake the drainer so it ends
      [[maybe_unused]] ssize_t n = ::write(term_pipe[1], &c, 1);
    }
    drainer.join();
  }
  if (drained) {
    std::fprintf(stderr, "magi-worker: drained; exiting\n");
    return 0;
  }
  if (!s.ok()) std::fprintf(stderr, "magi-worker: %s\n", s.ToString().c_str());
  if (absl::IsFailedPrecondition(s) && absl::StartsWith(s.message(), "stalled: ")) {
    // A wedged job thread (and, in a group, wedged ranks) cannot be joined: exit now; the
    // launcher takes the other ranks down and Kubernetes restarts the pod.
    std::fflush(stderr);
    std::_Exit(3);
  }
  return s.ok() ? 0 : 1;
}
