#include "parallel/rank_group.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <type_traits>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/torch_compat.h"
#ifdef MAGI_HAVE_NCCL
#include "parallel/nccl_communicator.h"
#endif

namespace magi {
namespace {

// ProcessGroupGloo is a c10d::ProcessGroup up to 1.13 and a c10d::Backend from 2.0.
static_assert(std::is_base_of<C10dCollectives, c10d::ProcessGroupGloo>::value,
              "base/torch_compat.h: C10dCollectives must be ProcessGroupGloo's base class in this LibTorch");

// Gloo rejects bf16 in every collective: move its bits as fp16 (same width).
at::Tensor MovableView(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 ? t.view(at::kHalf) : t;
}

int64_t RowBytes(const at::Tensor& t) { return t.dim() == 0 ? t.element_size() : t.numel() / std::max<int64_t>(1, t.size(0)) * t.element_size(); }

// Gloo moves CPU tensors. The world group of an NCCL layout may be handed a CUDA tensor (a
// control message); it travels through host memory: a synchronous copy each way, which is
// what control traffic can afford and the TP/CP data path (NCCL) never pays.
at::Tensor ToHost(const at::Tensor& t) { return t.is_cpu() ? t : t.to(at::kCPU); }

class C10dCommunicator : public Communicator {
 public:
  C10dCommunicator(std::string name, c10::intrusive_ptr<C10dCollectives> pg)
      : name_(std::move(name)), pg_(std::move(pg)) {}
  int rank() const override { return pg_->getRank(); }
  int size() const override { return pg_->getSize(); }
  const std::string& name() const override { return name_; }

  absl::Status AllReduceSum(at::Tensor& tensor, const std::string& label) override {
    return Guard("all-reduce", label, [&] {
      const bool low = tensor.scalar_type() == at::kBFloat16 || tensor.scalar_type() == at::kHalf;
      std::vector<at::Tensor> bufs = {low ? ToHost(tensor).to(at::kFloat) : ToHost(tensor).contiguous()};
      pg_->allreduce(bufs)->wait();
      if (!bufs[0].is_same(tensor)) tensor.copy_(bufs[0]);
      const int n = size();
      stats_.Add(label, 2 * (n - 1) * tensor.nbytes() / n);
    });
  }

  absl::Status AllGather(const at::Tensor& input, const std::vector<int64_t>& rows_per_rank, at::Tensor* output,
                         const std::string& label) override {
    return Guard("all-gather", label, [&] {
      const int n = size();
      // Gloo's allgather needs equal shapes: pad every rank's rows to the maximum.
      int64_t max_rows = 0, total = 0;
      for (int64_t r : rows_per_rank) {
        max_rows = std::max(max_rows, r);
        total += r;
      }
      std::vector<int64_t> shape = input.sizes().vec();
      shape[0] = max_rows;
      const at::Tensor host = ToHost(input);
      at::Tensor padded = at::zeros(shape, host.options());
      padded.narrow(0, 0, input.size(0)).copy_(host);
      std::vector<at::Tensor> in = {MovableView(padded)};
      std::vector<std::vector<at::Tensor>> out(1);
      for (int i = 0; i < n; ++i) out[0].push_back(at::empty_like(in[0]));
      pg_->allgather(out, in)->wait();
      std::vector<at::Tensor> parts;
      for (int i = 0; i < n; ++i) parts.push_back(out[0][i].narrow(0, 0, rows_per_rank[i]));
      at::Tensor cat = at::cat(parts, 0);
      if (input.scalar_type() == at::kBFloat16) cat = cat.view(at::kBFloat16);
      *output = input.is_cpu() ? cat : cat.to(input.device());
      stats_.Add(label, (total - rows_per_rank[rank()]) * RowBytes(input));
    });
  }

  absl::Status AllToAll(const at::Tensor& input, const std::vector<int64_t>& send_rows,
                        const std::vector<int64_t>& recv_rows, at::Tensor* output, const std::string& label) override {
    return Guard("all-to-all", label, [&] {
      int64_t total = 0, sent_out = 0;
      for (size_t i = 0; i < recv_rows.size(); ++i) total += recv_rows[i];
      for (size_t i = 0; i < send_rows.size(); ++i) {
        if (static_cast<int>(i) != rank()) sent_out += send_rows[i];
      }
      std::vector<int64_t> shape = input.sizes().vec();
      shape[0] = total;
      at::Tensor in = MovableView(ToHost(input).contiguous());
      at::Tensor out = at::empty(shape, in.options());
      std::vector<int64_t> send = send_rows, recv = recv_rows;
      pg_->alltoall_base(out, in, recv, send)->wait();
      if (input.scalar_type() == at::kBFloat16) out = out.view(at::kBFloat16);
      *output = input.is_cpu() ? out : out.to(input.device());
      stats_.Add(label, sent_out * RowBytes(input));
    });
  }

  absl::Status Broadcast(at::Tensor& tensor, int root, const std::string& label) override {
    return Guard("broadcast", label, [&] {
      std::vector<at::Tensor> bufs = {MovableView(ToHost(tensor).contiguous())};
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      pg_->broadcast(bufs, opts)->wait();
      if (rank() != root) tensor.copy_(tensor.scalar_type() == at::kBFloat16 ? bufs[0].view(at::kBFloat16) : bufs[0]);
      stats_.Add(label, rank() == root ? tensor.nbytes() : 0);
    });
  }

  absl::Status Barrier() override {
    return Guard("barrier", "barrier", [&] { pg_->barrier()->wait(); });
  }

 private:
  template <typename F>
  absl::Status Guard(const char* op, const std::string& label, F&& f) {
    try {
      f();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(op, " '", label, "' in group '", name_, "' (rank ", rank(), " of ",
                                                 size(), ") failed: ", e.what()));
    }
  }

  std::string name_;
  c10::intrusive_ptr<C10dCollectives> pg_;
};

absl::StatusOr<int> EnvInt(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  int x;
  if (!absl::SimpleAtoi(v, &x) || x < lo || x > hi) {
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, "='", v,
                                                   "' must be an integer in [", lo, ", ", hi, "]"));
  }
  return x;
}

}  // namespace

absl::StatusOr<CollectiveBackend> ParseCollectiveBackend(absl::string_view name) {
  if (name == "gloo") return CollectiveBackend::kGloo;
  if (name == "nccl") return CollectiveBackend::kNccl;
  return absl::InvalidArgumentError(absl::StrCat("collectives backend must be gloo or nccl, got '", name, "'"));
}

const char* CollectiveBackendName(CollectiveBackend backend) {
  return backend == CollectiveBackend::kNccl ? "nccl" : "gloo";
}

bool NcclCompiledIn() {
#ifdef MAGI_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

namespace {
int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

struct RankGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  std::thread monitor;
  // The store's sockets keep the rendezvous timeout (up to days), so a store call can block
  // that long: e.g. a peer frozen (SIGSTOP, a paused VM) in the middle of writing its
  // heartbeat can leave the store's server waiting for the rest of that message. The
  // watchdog bounds each of the monitor's store calls by the heartbeat timeout.
  std::thread watchdog;
  std::atomic<int64_t> store_call_since_ms{0};  // steady-clock ms when the pending call began; 0 = none
  std::atomic<bool> stop{false};
};

absl::StatusOr<RendezvousOptions> RendezvousFromEnv() {
  RendezvousOptions o;
  if (const char* a = std::getenv("MASTER_ADDR"); a != nullptr && *a != '\0') o.master_addr = a;
  auto port = EnvInt("MASTER_PORT", 29500, 1, 65535);
  auto world = EnvInt("WORLD_SIZE", 1, 1, 4096);
  if (!port.ok()) return port.status();
  if (!world.ok()) return world.status();
  auto rank = EnvInt("RANK", 0, 0, *world - 1);
  auto local = EnvInt("LOCAL_RANK", 0, 0, *world - 1);
  auto timeout = EnvInt("MAGI_DIST_TIMEOUT_S", 60, 1, 86400);
  MAGI_ASSIGN_OR_RETURN(auto rendezvous, EnvInt("MAGI_RENDEZVOUS_TIMEOUT_S", 1800, 1, 7 * 86400));
  o.rendezvous_timeout = std::chrono::seconds(rendezvous);
  if (!rank.ok()) return rank.status();
  if (!local.ok()) return local.status();
  if (!timeout.ok()) return timeout.status();
  o.master_port = *port;
  o.world_size = *world;
  o.rank = *rank;
  o.local_rank = *local;
  o.timeout = std::chrono::seconds(*timeout);
  return o;
}

absl::StatusOr<std::unique_ptr<RankGroup>> RankGroup::Join(const RendezvousOptions& o, int tp, int cp, int cfg,
                                                           int job_slots) {
  if (tp < 1 || cp < 1 || cfg < 1 || cfg * tp * cp != o.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("layout cfg ", cfg, " x tp ", tp, " x cp ", cp,
                                                   " needs WORLD_SIZE = ", cfg * tp * cp, ", got ", o.world_size));
  }
  if (job_slots < 1 || job_slots > 64) {
    return absl::InvalidArgumentError(absl::StrCat("job slots: allowed [1, 64], got ", job_slots));
  }
  const bool nccl = o.backend == CollectiveBackend::kNccl;
  if (nccl && !NcclCompiledIn()) {
    return absl::FailedPreconditionError(
        "the nccl backend is not in this build: configure with -DMAGI_WITH_CUDA=ON and a CUDA toolkit with NCCL");
  }
  const int cuda_device = o.cuda_device >= 0 ? o.cuda_device : o.local_rank;
  std::unique_ptr<RankGroup> g(new RankGroup());
  g->options_ = o;
  g->impl_ = std::make_unique<Impl>();
  g->layout_.tp_size = tp;
  g->layout_.cp_size = cp;
  const int model_rank = o.rank % (tp * cp);  // the shard this rank holds
  g->layout_.tp_rank = model_rank % tp;
  g->layout_.cp_rank = model_rank / tp;
  g->cfg_rank_ = o.rank / (tp * cp);
  // The TP and CP groups live within one CFG replica (named by it when there are several).
  const std::string replica = cfg == 1 ? std::string() : absl::StrCat("r", g->cfg_rank_, "_");
  if (o.world_size == 1) {
    g->world_ = MakeSingleRankCommunicator("world");
    g->tp_ = MakeSingleRankCommunicator("tp");
    g->cp_ = MakeSingleRankCommunicator("cp");
    g->cfg_ = MakeSingleRankCommunicator("cfg");
    g->order_ = MakeSingleRankCommunicator("order");
    for (int i = 1; i < job_slots; ++i) {
      g->slots_.push_back(MakeSingleRankCommunicator(absl::StrCat("slot", i)));
      g->cfg_slots_.push_back(MakeSingleRankCommunicator(absl::StrCat("cfg_slot", i)));
    }
    return g;
  }
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = o.world_size;
    // Every rank waits up to the rendezvous timeout: rank 0 for the others to connect, the
    // others for rank 0 to listen (c10d's client keeps retrying the connect). A thread logs
    // what is awaited every `rendezvous_retry` until it is done.
    using std::chrono::duration_cast;
    using ms = std::chrono::milliseconds;
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + o.rendezvous_timeout;
    auto waited_s = [&] {
      return static_cast<long long>(
          duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count());
    };
    auto left = [&] { return std::max(ms(1), duration_cast<ms>(deadline - std::chrono::steady_clock::now())); };
    const std::string awaited = o.rank == 0 ? absl::StrCat("the other ", o.world_size - 1, " rank(s) to connect")
                                            : std::string("rank 0 to listen");
    std::fprintf(stderr, "magi rank %d: rendezvous at %s:%d (world %d): waiting for %s, up to %llds\n", o.rank,
                 o.master_addr.c_str(), o.master_port, o.world_size, awaited.c_str(),
                 static_cast<long long>(duration_cast<std::chrono::seconds>(o.rendezvous_timeout).count()));
    std::mutex log_mu;
    std::condition_variable log_cv;
    bool joined = false;
    std::thread logger([&] {
      std::unique_lock<std::mutex> lock(log_mu);
      while (!log_cv.wait_for(lock, o.rendezvous_retry, [&] { return joined; })) {
        std::fprintf(stderr, "magi rank %d: still waiting for %s at %s:%d after %llds\n", o.rank, awaited.c_str(),
                     o.master_addr.c_str(), o.master_port, waited_s());
      }
    });
    auto stop_logger = [&] {
      {
        std::lock_guard<std::mutex> lock(log_mu);
        joined = true;
      }
      log_cv.notify_all();
      if (logger.joinable()) logger.join();
    };
    so.timeout = o.rendezvous_timeout;
    try {
      g->impl_->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
      // The process groups wait for their peers' addresses through the store until the
      // deadline; afterwards its operations use the heartbeat timeout.
      g->impl_->store->setTimeout(left());
    } catch (...) {
      stop_logger();
      throw;
    }
    stop_logger();
    auto make = [&](const std::string& prefix, int rank, int size) {
      auto opts = c10d::ProcessGroupGloo::Options::create(
          o.collective_timeout.count() > 0 ? o.collective_timeout : o.timeout);
      const bool loopback = o.master_addr == "127.0.0.1" || o.master_addr == "localhost";
      opts->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                       : c10d::ProcessGroupGloo::createDefaultDevice());
      auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, g->impl_->store);
      return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
    };
    g->world_ = std::make_unique<C10dCommunicator>("world", make("world", o.rank, o.world_size));
    // Job slots beyond the first, and the forward order: control channels, Gloo like the world.
    for (int i = 1; i < job_slots; ++i) {
      const std::string name = absl::StrCat("slot", i);
      g->slots_.push_back(std::make_unique<C10dCommunicator>(name, make(name, o.rank, o.world_size)));
    }
    // The forward order: within the replica (the whole world when cfg is 1).
    const int replica_size = tp * cp;
    g->order_ = job_slots == 1 || replica_size == 1
                    ? MakeSingleRankCommunicator("order")
                    : std::make_unique<C10dCommunicator>(
                          "order", make(absl::StrCat(replica, "order"), model_rank, replica_size));
    // The CFG channels (see Join's comment for why they are Gloo with NCCL and several slots).
    auto make_cfg = [&](const std::string& name, const std::string& prefix) -> std::unique_ptr<Communicator> {
      if (cfg == 1) return MakeSingleRankCommunicator(name);
      return std::make_unique<C10dCommunicator>(name, make(prefix, g->cfg_rank_, cfg));
    };
    for (int i = 1; i < job_slots; ++i) {
      g->cfg_slots_.push_back(make_cfg(absl::StrCat("cfg_slot", i), absl::StrCat("cfg", model_rank, "_slot", i)));
    }
    if (!nccl || job_slots > 1) g->cfg_ = make_cfg("cfg", absl::StrCat("cfg", model_rank));
    if (!nccl) {
      g->tp_ = tp == 1 ? MakeSingleRankCommunicator("tp")
                       : std::make_unique<C10dCommunicator>(
                             "tp", make(absl::StrCat(replica, "tp", g->layout_.cp_rank), g->layout_.tp_rank, tp));
      g->cp_ = cp == 1 ? MakeSingleRankCommunicator("cp")
                       : std::make_unique<C10dCommunicator>(
                             "cp", make(absl::StrCat(replica, "cp", g->layout_.tp_rank), g->layout_.cp_rank, cp));
    }
    g->impl_->store->setTimeout(o.timeout);
    std::fprintf(stderr, "magi rank %d: rendezvous done after %llds\n", o.rank, waited_s());
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rendezvous at ", o.master_addr, ":", o.master_port, " as rank ", o.rank,
                                               " of ", o.world_size, " failed: ", e.what()));
  }
  if (nccl) {
#ifdef MAGI_HAVE_NCCL
    // Agree over the world group that every rank has its GPU before any rank enters
    // ncclCommInitRank, which would wait forever for a rank that failed locally.
    const absl::Status device_ok = CheckCudaDevice(cuda_device);
    at::Tensor flag = at::full({1}, device_ok.ok() ? 0 : 1, at::kLong), flags;
    if (absl::Status s = g->world_->AllGather(flag, std::vector<int64_t>(o.world_size, 1), &flags, "nccl.device_check");
        !s.ok()) {
      return s;
    }
    std::vector<std::string> failing;
    for (int r = 0; r < o.world_size; ++r) {
      if (flags[r].item<int64_t>() != 0) failing.push_back(std::to_string(r));
    }
    if (!failing.empty()) {
      return absl::Status(
          device_ok.ok() ? absl::StatusCode::kUnavailable : device_ok.code(),
          absl::StrCat("rank ", o.rank, " of ", o.world_size, ": the nccl backend needs one CUDA device per rank; rank(s) ",
                       absl::StrJoin(failing, ", "), " could not use theirs",
                       device_ok.ok() ? std::string()
                                      : absl::StrCat("; this rank's cuda:", cuda_device, ": ", device_ok.message())));
    }
    // Every rank initialises its TP communicator, then its CP one: ncclCommInitRank blocks
    // until the whole group has called it, and this order is the same on all ranks.
    auto make_nccl = [&](const std::string& name, int index, int rank, int size)
        -> absl::StatusOr<std::unique_ptr<Communicator>> {
      if (size == 1) return MakeSingleRankCommunicator(name);
      c10d::PrefixStore ids(absl::StrCat("nccl/", name, index), g->impl_->store);
      auto comm = MakeNcclCommunicator(name, ids, rank, size, cuda_device);
      if (!comm.ok()) {
        return absl::Status(comm.status().code(), absl::StrCat("rank ", o.rank, " of ", o.world_size, ", ", name,
                                                               " group ", index, ": ", comm.status().message()));
      }
      return comm;
    };
    // Group indices unique over replicas: TP group (replica, cp_rank), CP group (replica, tp_rank).
    MAGI_ASSIGN_OR_RETURN(auto tp_comm,
                          make_nccl("tp", g->cfg_rank_ * cp + g->layout_.cp_rank, g->layout_.tp_rank, tp));
    MAGI_ASSIGN_OR_RETURN(auto cp_comm,
                          make_nccl("cp", g->cfg_rank_ * tp + g->layout_.tp_rank, g->layout_.cp_rank, cp));
    g->tp_ = std::move(tp_comm);
    g->cp_ = std::move(cp_comm);
    if (job_slots == 1) {
      MAGI_ASSIGN_OR_RETURN(g->cfg_, make_nccl("cfg", model_rank, g->cfg_rank_, cfg));
    }
#endif
  }
  return g;
}

void RankGroup::StartPeerMonitor() {
  if (options_.world_size == 1 || impl_->monitor.joinable()) return;
  impl_->monitor = std::thread([this] {
    const int me = options_.rank, n = options_.world_size;
    const auto period = std::chrono::milliseconds(500);
    std::vector<std::string> last(n);
    std::vector<std::chrono::steady_clock::time_point> seen(n, std::chrono::steady_clock::now());
    int64_t beat = 0;
    while (!impl_->stop.load()) {
      impl_->store_call_since_ms.store(SteadyMs());
      try {
        const std::string v = std::to_string(++beat);
        impl_->store->set(absl::StrCat("magi/heartbeat/", me), std::vector<uint8_t>(v.begin(), v.end()));
        const auto now = std::chrono::steady_clock::now();
        for (int r = 0; r < n; ++r) {
          if (r == me) continue;
          const std::string key = absl::StrCat("magi/heartbeat/", r);
          if (impl_->store->check({key})) {
            auto bytes = impl_->store->get(key);
            std::string s(bytes.begin(), bytes.end());
            if (s != last[r]) {
              last[r] = s;
              seen[r] = now;
            }
          }
          if (now - seen[r] > options_.timeout) {
            std::fprintf(stderr, "magi rank %d: rank %d stopped responding (no heartbeat for %lld s); exiting\n", me, r,
                         static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(options_.timeout).count()));
            std::fflush(stderr);
            std::_Exit(3);
          }
        }
      } catch (const std::exception& e) {
        if (impl_->stop.load()) return;
        std::fprintf(stderr, "magi rank %d: lost the rendezvous store at %s:%d (rank 0 is gone): %s; exiting\n", me,
                     options_.master_addr.c_str(), options_.master_port, e.what());
        std::fflush(stderr);
        std::_Exit(3);
      }
      impl_->store_call_since_ms.store(0);
      std::this_thread::sleep_for(period);
    }
  });
  impl_->watchdog = std::thread([this] {
    const int64_t limit_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options_.timeout).count();
    while (!impl_->stop.load()) {
      const int64_t since = impl_->store_call_since_ms.load();
      if (since != 0 && SteadyMs() - since > limit_ms) {
        std::fprintf(stderr,
                     "magi rank %d: the rendezvous store at %s:%d has not answered the heartbeat for %lld s "
                     "(a peer frozen mid-write?); exiting\n",
                     options_.rank, options_.master_addr.c_str(), options_.master_port,
                     static_cast<long long>(limit_ms / 1000));
        std::fflush(stderr);
        std::_Exit(3);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
}

RankGroup::~RankGroup() {
  if (impl_ && impl_->monitor.joinable()) {
    impl_->stop.store(true);
    // While this waits for the monitor, the watchdog still runs: a monitor stuck in a store
    // call ends the process within the heartbeat timeout instead of hanging its exit.
    impl_->monitor.join();
    if (impl_->watchdog.joinable()) impl_->watchdog.join();
  }
}

}  // namespace magi
