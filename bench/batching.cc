// bench_batching: several jobs on one worker group, batched vs one at a time (issue "several
// jobs per group").
//
// N jobs of the tiny model set (different seeds and prompts, same size) are all submitted at
// time 0 and run
//   (a) one at a time on a runner with one slot (what --max_jobs_per_group 1 does) = baseline;
//   (b) all at once on a runner with N slots: their DiT calls share batched forwards
//       (ForwardBatcher), the VAE one job at a time.
// Prints jobs/hour of each and their ratio, p50 / p90 time to first chunk (from submission)
// of each, how the DiT calls were batched, and the largest pixel difference of each job's
// video between (a) and (b).
//
//   bench_batching [--jobs N] [--frames F] [--steps S] [--size WxH] [--model_dir DIR]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "jobspec/job_spec.h"
#include "worker/runner/model_job_runner.h"
#include "worker/runner/tiny_model.h"

namespace magi {
namespace {

class TimingSink final : public FrameSink {
 public:
  explicit TimingSink(double t0) : t0_(t0) {}
  absl::Status OnPrefixChunk(int, const std::vector<RgbFrame>&) override { return absl::OkStatus(); }
  absl::Status OnChunk(int, const std::vector<RgbFrame>& frames) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_chunk_ < 0) first_chunk_ = NowSeconds() - t0_;
    for (const auto& f : frames) video_.insert(video_.end(), f.rgb24.begin(), f.rgb24.end());
    return absl::OkStatus();
  }
  void OnProgress(const StepProgress&) override {}
  bool Cancelled() const override { return false; }
  double first_chunk() const { return first_chunk_; }
  const std::vector<uint8_t>& video() const { return video_; }
  double done = 0;

 private:
  double t0_;
  std::mutex mu_;
  double first_chunk_ = -1;
  std::vector<uint8_t> video_;
};

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

int Main(int argc, char** argv) {
  int jobs = 4, frames = 96, steps = 8, width = 256, height = 256;
  std::string model_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--jobs") jobs = std::atoi(argv[i + 1]);
    else if (a == "--frames") frames = std::atoi(argv[i + 1]);
    else if (a == "--steps") steps = std::atoi(argv[i + 1]);
    else if (a == "--size") std::sscanf(argv[i + 1], "%dx%d", &width, &height);
    else if (a == "--model_dir") model_dir = argv[i + 1];
    else {
      std::fprintf(stderr, "bench_batching: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (jobs < 1 || jobs > 16) {
    std::fprintf(stderr, "bench_batching: --jobs must be in [1, 16], got %d\n", jobs);
    return 2;
  }
  if (model_dir.empty()) {
    model_dir = (std::filesystem::temp_directory_path() / "magi_bench_batching_tiny").string();
    if (auto st = WriteTinyModelSet(model_dir); !st.ok()) {
      std::fprintf(stderr, "bench_batching: %s\n", std::string(st.message()).c_str());
      return 1;
    }
  }
  ModelRunnerOptions one, many;
  many.max_concurrent_jobs = jobs;
  auto solo = ModelJobRunner::Load(model_dir, one);
  auto shared = ModelJobRunner::Load(model_dir, many);
  if (!solo.ok() || !shared.ok()) {
    std::fprintf(stderr, "bench_batching: %s\n",
                 std::string((solo.ok() ? shared.status() : solo.status()).message()).c_str());
    return 1;
  }
  const char* prompts[] = {"a red ball bouncing on a wooden floor", "waves breaking on a rocky shore",
                           "a paper boat drifting down a stream", "snow falling over a quiet street"};
  std::vector<RunnerJob> specs;
  for (int j = 0; j < jobs; ++j) {
    ::magi::v1::GenerateRequest r;
    r.add_prompts()->set_text(prompts[j % 4]);
    r.set_num_frames(frames);
    r.set_width(width);
    r.set_height(height);
    r.set_num_steps(steps);
    r.set_seed(100 + j);
    auto spec = BuildJobSpec(r, (*solo)->Models().front());
    if (!spec.ok()) {
      std::fprintf(stderr, "bench_batching: %s\n", std::string(spec.status().message()).c_str());
      return 2;
    }
    RunnerJob job;
    job.job_id = "bench-" + std::to_string(j);
    job.spec = *spec;
    specs.push_back(job);
  }
  std::printf("bench_batching: %d jobs of %d frames %dx%d, %d steps, tiny model set %s\n", jobs, frames, width, height,
              steps, model_dir.c_str());

  // (a) one at a time.
  std::vector<std::unique_ptr<TimingSink>> a;
  double t0 = NowSeconds();
  for (int j = 0; j < jobs; ++j) {
    a.push_back(std::make_unique<TimingSink>(t0));
    if (auto st = (*solo)->Run(specs[j], *a[j]); !st.ok()) {
      std::fprintf(stderr, "bench_batching: job %d: %s\n", j, std::string(st.message()).c_str());
      return 1;
    }
    a[j]->done = NowSeconds() - t0;
  }
  const double a_wall = NowSeconds() - t0;

  // (b) all at once.
  std::vector<std::unique_ptr<TimingSink>> b;
  std::vector<absl::Status> results(jobs);
  std::vector<std::thread> threads;
  t0 = NowSeconds();
  for (int j = 0; j < jobs; ++j) b.push_back(std::make_unique<TimingSink>(t0));
  for (int j = 0; j < jobs; ++j) {
    threads.emplace_back([&, j] {
      results[j] = (*shared)->Run(specs[j], *b[j]);
      b[j]->done = NowSeconds() - t0;
    });
  }
  for (auto& t : threads) t.join();
  const double b_wall = NowSeconds() - t0;
  for (int j = 0; j < jobs; ++j) {
    if (!results[j].ok()) {
      std::fprintf(stderr, "bench_batching: batched job %d: %s\n", j, std::string(results[j].message()).c_str());
      return 1;
    }
  }

  std::vector<double> a_first, b_first;
  for (int j = 0; j < jobs; ++j) {
    a_first.push_back(a[j]->first_chunk());
    b_first.push_back(b[j]->first_chunk());
  }
  std::printf("%-24s %12s %12s %10s\n", "", "one at a time", "batched", "ratio");
  std::printf("%-24s %12.1f %12.1f %9.2fx\n", "wall seconds", a_wall, b_wall, b_wall / a_wall);
  std::printf("%-24s %12.0f %12.0f %9.2fx\n", "jobs/hour", jobs * 3600.0 / a_wall, jobs * 3600.0 / b_wall,
              a_wall / b_wall);
  std::printf("%-24s %12.2f %12.2f %9.2fx\n", "first chunk p50 (s)", Percentile(a_first, 0.5),
              Percentile(b_first, 0.5), Percentile(b_first, 0.5) / Percentile(a_first, 0.5));
  std::printf("%-24s %12.2f %12.2f %9.2fx\n", "first chunk p90 (s)", Percentile(a_first, 0.9),
              Percentile(b_first, 0.9), Percentile(b_first, 0.9) / Percentile(a_first, 0.9));
  const ForwardBatcherStats st = (*shared)->batch_stats();
  std::printf("batched: %lld DiT calls in %lld forwards (%.2f calls per forward), widest batch %d\n",
              static_cast<long long>(st.calls), static_cast<long long>(st.forwards),
              st.forwards > 0 ? static_cast<double>(st.calls) / static_cast<double>(st.forwards) : 0.0, st.max_batch);
  for (int j = 0; j < jobs; ++j) {
    const auto& va = a[j]->video();
    const auto& vb = b[j]->video();
    int worst = va.size() == vb.size() ? 0 : 255;
    for (size_t k = 0; k < std::min(va.size(), vb.size()); ++k) worst = std::max(worst, std::abs(int{va[k]} - int{vb[k]}));
    std::printf("job %d: first chunk %.2f s vs %.2f s, done %.2f s vs %.2f s, largest pixel difference %d / 255\n", j,
                a[j]->first_chunk(), b[j]->first_chunk(), a[j]->done, b[j]->done, worst);
  }
  return 0;
}

}  // namespace
}  // namespace magi

int main(int argc, char** argv) { return magi::Main(argc, argv); }
