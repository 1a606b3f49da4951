// bench_serve: what serving through magi-server costs on top of running the job in-process.
//
// The same job (synthetic frame runner -- test patterns, not the model -- with a fixed
// per-step delay, through the real fMP4 encoder) runs
//   (a) in-process: JobExecutor + runner, fragments dropped;                 = baseline
//   (b) served: ServerApp (gRPC, SQLite WAL, fragments synced to disk) + a WorkerLink
//       over loopback gRPC + a client reading the Generate stream.
// Prints (b)/(a) and, for every chunk k, the lag from the runner handing over chunk k's
// frames to the client holding its fragment (encode + worker->server->client + storage).
// Everything runs in one process, so both ends read the same clock.
//
//   bench_serve [--chunks N] [--steps N] [--step-ms MS] [--size PX] [--reps N]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "magi/v1/video_generation.grpc.pb.h"
#include "server/server_app.h"
#include "worker/main/job_executor.h"
#include "worker/main/worker_link.h"
#include "worker/runner/synthetic_frame_runner.h"

namespace magi {
namespace {

// Records when the wrapped runner hands each chunk over.
class TimedRunner final : public JobRunner {
 public:
  explicit TimedRunner(JobRunner* inner) : inner_(inner) {}
  std::string name() const override { return inner_->name(); }
  std::vector<::magi::internal::v1::ModelInfo> Models() const override { return inner_->Models(); }
  absl::Status Run(const RunnerJob& job, FrameSink& sink) override {
    struct Sink final : FrameSink {
      FrameSink* s;
      TimedRunner* t;
      absl::Status OnPrefixChunk(int i, const std::vector<RgbFrame>& f) override { return s->OnPrefixChunk(i, f); }
      absl::Status OnChunk(int i, const std::vector<RgbFrame>& f) override {
        absl::Time handed = absl::Now();
        absl::Status st = s->OnChunk(i, f);  // encodes, then queues ChunkReady on the stream
        std::lock_guard<std::mutex> lock(t->mu_);
        t->finished_.push_back(handed);
        t->sent_.push_back(absl::Now());
        return st;
      }
      void OnProgress(const StepProgress& p) override { s->OnProgress(p); }
      bool Cancelled() const override { return s->Cancelled(); }
    } wrapped;
    wrapped.s = &sink;
    wrapped.t = this;
    return inner_->Run(job, wrapped);
  }
  std::vector<absl::Time> TakeFinished() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(finished_, {});
  }
  // When each chunk's fragment was encoded and handed to the worker's stream.
  std::vector<absl::Time> TakeSent() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(sent_, {});
  }

 private:
  JobRunner* inner_;
  std::mutex mu_;
  std::vector<absl::Time> finished_;
  std::vector<absl::Time> sent_;
};

int Arg(int argc, char** argv, const char* name, int dflt) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], name)) return std::atoi(argv[i + 1]);
  }
  return dflt;
}

int Main(int argc, char** argv) {
  const int chunks = Arg(argc, argv, "--chunks", 4);
  const int steps = Arg(argc, argv, "--steps", 4);
  const int step_ms = Arg(argc, argv, "--step-ms", 20);
  const int size = Arg(argc, argv, "--size", 256);
  const int reps = Arg(argc, argv, "--reps", 3);

  ::magi::v1::GenerateRequest req;
  req.add_prompts()->set_text("bench");
  req.set_num_frames(chunks * 24);
  req.set_width(size);
  req.set_height(size);
  req.set_fps(24);
  req.set_num_steps(steps);
  req.set_seed(1);

  SyntheticFrameRunner synthetic(absl::Milliseconds(step_ms));
  TimedRunner runner(&synthetic);

  // (b) served.
  auto dir = std::filesystem::temp_directory_path() / ("magi-bench-serve-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ServerApp app;
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.http_listen = "";
  o.jobs.state_dir = dir.string();
  o.jobs.default_model = "synthetic";  // the groups here run SyntheticFrameRunner
  if (auto s = app.Start(o); !s.ok()) {
    std::fprintf(stderr, "bench_serve: %s\n", s.ToString().c_str());
    return 1;
  }
  std::string addr = "127.0.0.1:" + std::to_string(app.grpc_port());
  WorkerLinkOptions lo;
  lo.server = addr;
  lo.token_file = app.worker_token_file();
  WorkerLink link(lo, &runner);
  std::thread worker([&] { link.Run().IgnoreError(); });
  while (app.manager().groups_up() == 0) absl::SleepFor(absl::Milliseconds(5));
  grpc::ChannelArguments ca;
  ca.SetMaxReceiveMessageSize(256 << 20);
  auto stub = ::magi::v1::VideoGeneration::NewStub(
      grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), ca));

  // (a) in-process baseline, interleaved with (b) so machine load hits both alike.
  std::vector<double> local;
  auto run_local = [&]() -> bool {
    ::magi::internal::v1::Assignment a;
    a.set_job_id("bench");
    a.set_attempt(1);
    auto spec = BuildJobSpec(req, synthetic.Models().front());
    if (!spec.ok()) return false;
    *a.mutable_spec() = *spec;
    JobExecutor ex(runner, a, [](const ::magi::internal::v1::WorkerMessage&) { return true; });
    absl::Time t0 = absl::Now();
    if (!ex.Run().ok()) return false;
    local.push_back(absl::ToDoubleSeconds(absl::Now() - t0));
    runner.TakeFinished();
    runner.TakeSent();
    return true;
  };
  if (!run_local()) return 1;  // warm-up (x264, allocator), not counted
  local.clear();
  std::vector<double> served, lags, encode_ms, delivery_ms;
  double first_chunk_served = 0;
  for (int r = 0; r < reps; ++r) {
    if (!run_local()) return 1;
    grpc::ClientContext ctx;
    absl::Time t0 = absl::Now();
    auto reader = stub->Generate(&ctx, req);
    ::magi::v1::GenerateEvent e;
    std::vector<absl::Time> received;
    while (reader->Read(&e)) {
      if (e.has_chunk()) received.push_back(absl::Now());
    }
    if (!reader->Finish().ok() || static_cast<int>(received.size()) != chunks) {
      std::fprintf(stderr, "bench_serve: served job failed\n");
      return 1;
    }
    served.push_back(absl::ToDoubleSeconds(absl::Now() - t0));
    first_chunk_served += absl::ToDoubleSeconds(received[0] - t0) / reps;
    std::vector<absl::Time> finished = runner.TakeFinished();
    std::vector<absl::Time> sent = runner.TakeSent();
    for (int k = 0; k < chunks; ++k) {
      lags.push_back(absl::ToDoubleMilliseconds(received[k] - finished[k]));
      encode_ms.push_back(absl::ToDoubleMilliseconds(sent[k] - finished[k]));
      delivery_ms.push_back(absl::ToDoubleMilliseconds(received[k] - sent[k]));
    }
  }
  link.Stop();
  worker.join();
  app.Shutdown();
  std::filesystem::remove_all(dir);

  std::sort(local.begin(), local.end());
  std::sort(served.begin(), served.end());
  std::sort(lags.begin(), lags.end());
  std::sort(encode_ms.begin(), encode_ms.end());
  std::sort(delivery_ms.begin(), delivery_ms.end());
  double local_med = local[local.size() / 2], served_med = served[served.size() / 2];
  std::printf("bench_serve: %d chunks x 24 frames %dx%d, %d steps x %d ms (synthetic runner), %d reps\n",
              chunks, size, size, steps, step_ms, reps);
  std::printf("  in-process runner+encoder (baseline): median %.3f s\n", local_med);
  std::printf("  gRPC end-to-end (server+worker+client): median %.3f s, first chunk after %.3f s\n",
              served_med, first_chunk_served);
  std::printf("  ratio served / in-process: %.3f\n", served_med / local_med);
  std::printf("  chunk lag (runner done -> client holds fragment) over %zu chunks: median %.2f ms, "
              "p90 %.2f ms, max %.2f ms\n",
              lags.size(), lags[lags.size() / 2], lags[lags.size() * 9 / 10], lags.back());
  std::printf("    of which fMP4 encode: median %.2f ms; worker -> server (SQLite + fsync) -> client: "
              "median %.2f ms, max %.2f ms\n",
              encode_ms[encode_ms.size() / 2], delivery_ms[delivery_ms.size() / 2], delivery_ms.back());
  return 0;
}

}  // namespace
}  // namespace magi

int main(int argc, char** argv) { return magi::Main(argc, argv); }
