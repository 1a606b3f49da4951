// ModelJobRunner on the embedded tiny model: chunk and frame counts, streaming, cancel,
// resume equality, request validation, and the special caption tokens of serving_config.
#include "worker/engine/ar_engine.h"
#include "worker/runner/model_job_runner.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <atomic>
#include <chrono>
#include <mutex>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jobspec/job_spec.h"
#include "tests/engine/host_backed_device.h"
#include "tests/runner/fake_group.h"
#include "worker/main/rank_group_runner.h"
#include "worker/model/special_tokens.h"
#include "worker/runner/tiny_model.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

// Chunks may arrive on the runner's delivery thread while progress comes on Run()'s: the
// counters both sides touch are atomics, the chunk lists are written by the delivery side only
// and read after Run() returned.
class RecordingSink : public FrameSink {
 public:
  absl::Status OnPrefixChunk(int index, const std::vector<RgbFrame>& frames) override {
    prefix.push_back({index, frames});
    return absl::OkStatus();
  }
  absl::Status OnChunk(int index, const std::vector<RgbFrame>& frames) override {
    chunks.push_back({index, frames});
    progress_at_chunk.push_back(progress_calls);
    if (on_chunk) on_chunk(index);
    if (cancel_after_chunks > 0 && static_cast<int>(chunks.size()) >= cancel_after_chunks) cancel = true;
    return absl::OkStatus();
  }
  void OnProgress(const StepProgress& p) override {
    ++progress_calls;
    std::lock_guard<std::mutex> lock(mu);
    last = p;
  }
  bool Cancelled() const override { return cancel; }

  std::vector<std::pair<int, std::vector<RgbFrame>>> prefix, chunks;
  std::vector<int> progress_at_chunk;
  std::atomic<int> progress_calls{0};
  std::mutex mu;
  StepProgress last;  // guarded by mu while Run() runs
  std::function<void(int index)> on_chunk;
  int cancel_after_chunks = 0;
  std::atomic<bool> cancel{false};
};

class ModelJobRunnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("magi_runner_test_" + std::to_string(::getpid())));
    ASSERT_TRUE(WriteTinyModelSet((*dir_ / "tiny").string()).ok());
    auto r = ModelJobRunner::Load((*dir_ / "tiny").string());
    ASSERT_TRUE(r.ok()) << r.status();
    runner_ = r->release();
  }
  static void TearDownTestSuite() {
    delete runner_;
    fs::remove_all(*dir_);
    delete dir_;
  }

  // A job as the edge builds it for this runner's model, after `edit` changed the request.
  static RunnerJob Job(int frames, int start_chunk = 0,
                       const std::function<void(::magi::v1::GenerateRequest&)>& edit = {}) {
    RunnerJob job;
    job.job_id = "j-test";
    ::magi::v1::GenerateRequest r;
    auto* p = r.add_prompts();
    p->set_text("a red fox running through the snow");
    r.set_num_frames(frames);
    r.set_width(64);
    r.set_height(48);
    r.set_fps(24);
    r.set_seed(7);
    r.set_num_steps(4);
    if (edit) edit(r);
    auto spec = BuildJobSpec(r, runner_->Models().front());
    EXPECT_TRUE(spec.ok()) << spec.status();
    if (spec.ok()) job.spec = *spec;
    job.start_chunk = start_chunk;
    return job;
  }

  // The tiny model without its VAE (what a group follower needs), made once.
  static fs::path NoVaeModel() {
    const fs::path tiny = *dir_ / "tiny", no_vae = *dir_ / "no_vae";
    if (!fs::exists(no_vae)) {
      fs::create_directories(no_vae);
      for (const char* sub : {"dit", "t5"}) fs::create_directory_symlink(tiny / sub, no_vae / sub);
      for (const char* file : {"config.json", "special_tokens.npz"}) fs::copy_file(tiny / file, no_vae / file);
    }
    return no_vae;
  }

  static fs::path* dir_;
  static ModelJobRunner* runner_;
};
fs::path* ModelJobRunnerTest::dir_ = nullptr;
ModelJobRunner* ModelJobRunnerTest::runner_ = nullptr;

// The served name: --model_name, else serving_config.name, else the folder's basename.
TEST_F(ModelJobRunnerTest, ModelNameComesFromTheFlagTheConfigOrTheFolder) {
  EXPECT_EQ(runner_->model_name(), "tiny");  // the tiny set names itself in serving_config
  EXPECT_EQ(runner_->Models()[0].name(), "tiny");
  ModelRunnerOptions named;
  named.model_name = "magi-1-24b";
  auto r = ModelJobRunner::Load((*dir_ / "tiny").string(), named);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->Models()[0].name(), "magi-1-24b");
  named.model_name = "bad name";
  auto bad = ModelJobRunner::Load((*dir_ / "tiny").string(), named);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--model_name: model name 'bad name' is invalid"), std::string::npos);
  // A copy without serving_config.name serves under its folder's name.
  const fs::path copy = *dir_ / "magi-4.5b-copy";
  fs::copy(*dir_ / "tiny", copy, fs::copy_options::recursive);
  MagiConfig c = TinyModelSetConfig();
  c.serving.name.clear();
  std::ofstream((copy / "config.json").string()) << MagiConfigToJson(c);
  auto by_folder = ModelJobRunner::Load(copy.string() + "/");
  ASSERT_TRUE(by_folder.ok()) << by_folder.status();
  EXPECT_EQ((*by_folder)->Models()[0].name(), "magi-4.5b-copy");
}

TEST_F(ModelJobRunnerTest, MakesEveryChunkAndStreamsThemAsTheyFinish) {
  RecordingSink sink;
  ASSERT_TRUE(runner_->Run(Job(4 * 24), sink).ok());
  ASSERT_EQ(sink.chunks.size(), 4u);
  EXPECT_TRUE(sink.prefix.empty());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(sink.chunks[i].first, i);
    ASSERT_EQ(sink.chunks[i].second.size(), 24u);
    EXPECT_EQ(sink.chunks[i].second[0].width, 64);
    EXPECT_EQ(sink.chunks[i].second[0].height, 48);
  }
  // Streaming: chunk 0 is handed over before the run ends (the delivery overlaps the
  // engine's later steps: DeliversAChunkWhileTheEngineComputesTheNext).
  EXPECT_LT(sink.progress_at_chunk[0], sink.progress_calls.load());
  EXPECT_EQ(sink.last.step, sink.last.total_steps);
  // Not a constant picture: the model made something.
  EXPECT_NE(sink.chunks[0].second[0].rgb24, sink.chunks[3].second[23].rgb24);
}

TEST_F(ModelJobRunnerTest, TrimsTheLastChunkToNumFrames) {
  RecordingSink sink;
  ASSERT_TRUE(runner_->Run(Job(28), sink).ok());
  ASSERT_EQ(sink.chunks.size(), 2u);
  EXPECT_EQ(sink.chunks[0].second.size(), 24u);
  EXPECT_EQ(sink.chunks[1].second.size(), 4u);
}

TEST_F(ModelJobRunnerTest, ResumedRunEqualsAnUndisturbedOne) {
  RecordingSink full, resumed;
  ASSERT_TRUE(runner_->Run(Job(3 * 24), full).ok());
  ASSERT_TRUE(runner_->Run(Job(3 * 24, /*start_chunk=*/1), resumed).ok());
  ASSERT_EQ(resumed.prefix.size(), 1u);
  ASSERT_EQ(resumed.chunks.size(), 2u);
  EXPECT_EQ(resumed.prefix[0].first, 0);
  for (size_t f = 0; f < 24; ++f) EXPECT_EQ(resumed.prefix[0].second[f].rgb24, full.chunks[0].second[f].rgb24);
  for (int c = 0; c < 2; ++c) {
    EXPECT_EQ(resumed.chunks[c].first, c + 1);
    for (size_t f = 0; f < 24; ++f) {
      ASSERT_EQ(resumed.chunks[c].second[f].rgb24, full.chunks[c + 1].second[f].rgb24) << "chunk " << c + 1 << " frame " << f;
    }
  }
  // Another seed gives another video.
  RecordingSink other;
  RunnerJob job = Job(24, 0, [](auto& r) { r.set_seed(8); });
  ASSERT_TRUE(runner_->Run(job, other).ok());
  EXPECT_NE(other.chunks[0].second[5].rgb24, full.chunks[0].second[5].rgb24);
}

// --max_jobs_per_group 3: three jobs (different lengths, seeds and prompts; one i2v-free mix of
// window shapes) run at once on one runner, their DiT calls batched. Each job's frames equal
// its solo run's to within one level of 255 (float32 roundings of the batched GEMMs through 4
// steps and the VAE), and a rank group cannot take several jobs.
TEST_F(ModelJobRunnerTest, ConcurrentJobsShareForwardsAndEachMakesItsSoloVideo) {
  ModelRunnerOptions o;
  o.max_concurrent_jobs = 3;
  auto loaded = ModelJobRunner::Load((*dir_ / "tiny").string(), o);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ModelJobRunner& shared = **loaded;
  EXPECT_EQ(shared.max_concurrent_jobs(), 3);
  const std::vector<RunnerJob> jobs = {
      Job(3 * 24), Job(2 * 24, 0, [](auto& r) { r.set_seed(11); }),
      Job(4 * 24, 0, [](auto& r) { r.mutable_prompts(0)->set_text("waves breaking on a rocky shore"); })};
  std::vector<RecordingSink> solo(jobs.size()), together(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) ASSERT_TRUE(runner_->Run(jobs[i], solo[i]).ok());
  std::vector<absl::Status> results(jobs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < jobs.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = shared.Run(jobs[i], together[i]); });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i];
    ASSERT_EQ(together[i].chunks.size(), solo[i].chunks.size());
    int worst = 0;
    for (size_t c = 0; c < solo[i].chunks.size(); ++c) {
      ASSERT_EQ(together[i].chunks[c].second.size(), solo[i].chunks[c].second.size());
      for (size_t f = 0; f < solo[i].chunks[c].second.size(); ++f) {
        const std::vector<uint8_t>& a = together[i].chunks[c].second[f].rgb24;
        const std::vector<uint8_t>& b = solo[i].chunks[c].second[f].rgb24;
        ASSERT_EQ(a.size(), b.size());
        for (size_t k = 0; k < a.size(); ++k) worst = std::max(worst, std::abs(int{a[k]} - int{b[k]}));
      }
    }
    std::printf("job %zu: largest pixel difference from its solo run %d / 255\n", i, worst);
    EXPECT_LE(worst, 1) << "job " << i;
  }
  const ForwardBatcherStats st = shared.batch_stats();
  std::printf("DiT calls %lld in %lld forwards, widest batch %d\n", static_cast<long long>(st.calls),
              static_cast<long long>(st.forwards), st.max_batch);
  EXPECT_LT(st.forwards, st.calls);
  EXPECT_GE(st.max_batch, 2);
  ModelRunnerOptions group;
  group.max_concurrent_jobs = 2;
  group.layout.tp_size = 2;
  auto refused = ModelJobRunner::Load((*dir_ / "tiny").string(), group);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--max_jobs_per_group 2"), std::string::npos) << refused.status();
  group.layout.tp_size = 1;
  group.max_concurrent_jobs = 17;
  auto too_many = ModelJobRunner::Load((*dir_ / "tiny").string(), group);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("[1, 16], got 17"), std::string::npos) << too_many.status();
}

// The lead K/V budget reaches the engine: by default (0) the stream-first schedule recomputes
// the first chunk's K/V in the steps later chunks read (the tiny model: window 2, so 8 steps /
// 2 = 4 steps, one extra chunk in a forward each), with -1 it records them; the video is the
// same to float32 rounding (the recomputed lead chunk shares its forward with the later chunks,
// whose GEMMs a BLAS may block differently on another CPU: within one level of 255; measured
// byte-equal on AMD EPYC with AVX-512).
TEST_F(ModelJobRunnerTest, TheLeadKvBudgetPicksRecomputeOrRecordForTheSameVideo) {
  const RunnerJob job = Job(4 * 24, 0, [](auto& r) { r.set_num_steps(8); });
  std::vector<GenerateResult> results;
  std::vector<RecordingSink> sinks(2);
  for (int64_t budget : {kDefaultLeadKvBudgetBytes, int64_t{-1}}) {
    ModelRunnerOptions o;
    o.lead_kv_budget_bytes = budget;
    o.on_result = [&](const GenerateResult& r) { results.push_back(r); };
    auto loaded = ModelJobRunner::Load((*dir_ / "tiny").string(), o);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_TRUE((*loaded)->Run(job, sinks[results.size()]).ok());
  }
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(kDefaultLeadKvBudgetBytes, 0);
  EXPECT_EQ(results[0].schedule, Schedule::kStreamFirst);
  EXPECT_EQ(results[0].lead_kv_steps, 0);
  EXPECT_EQ(results[0].lead_recompute_steps, 4);
  EXPECT_EQ(results[1].lead_kv_steps, 4);
  EXPECT_EQ(results[1].lead_recompute_steps, 0);
  ASSERT_EQ(sinks[0].chunks.size(), 4u);
  ASSERT_EQ(sinks[1].chunks.size(), 4u);
  int worst = 0;
  for (size_t c = 0; c < 4; ++c) {
    ASSERT_EQ(sinks[0].chunks[c].second.size(), sinks[1].chunks[c].second.size());
    for (size_t f = 0; f < sinks[0].chunks[c].second.size(); ++f) {
      const std::vector<uint8_t>& a = sinks[0].chunks[c].second[f].rgb24;
      const std::vector<uint8_t>& b = sinks[1].chunks[c].second[f].rgb24;
      ASSERT_EQ(a.size(), b.size());
      for (size_t k = 0; k < a.size(); ++k) worst = std::max(worst, std::abs(int{a[k]} - int{b[k]}));
    }
  }
  std::printf("recompute vs record: largest pixel difference %d / 255\n", worst);
  EXPECT_LE(worst, 1);
}

// A file made by the ffmpeg CLI from its test source (the media inputs the API takes).
std::string MakeMedia(const fs::path& dir, const std::string& name, const std::string& args) {
  const fs::path path = dir / name;
  const std::string cmd = "ffmpeg -v error -y -f lavfi -i testsrc=size=80x60:rate=24 " + args + " '" + path.string() + "'";
  if (std::system(cmd.c_str()) != 0) return std::string();
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_F(ModelJobRunnerTest, ImageAndVideoPrefixModesMakeTheRequestedFrames) {
  const std::string png = MakeMedia(*dir_, "in.png", "-frames:v 1");
  const std::string mp4 = MakeMedia(*dir_, "in.mp4", "-t 1.5 -pix_fmt yuv420p -c:v libx264");
  ASSERT_FALSE(png.empty());
  ASSERT_FALSE(mp4.empty());
  for (auto mode : {::magi::v1::MODE_I2V, ::magi::v1::MODE_V2V}) {
    RunnerJob job = Job(48, 0, [&](auto& r) {
      r.set_mode(mode);
      if (mode == ::magi::v1::MODE_I2V) r.set_image(png);
      else r.set_prefix_video(mp4);
    });
    RecordingSink sink;
    absl::Status s = runner_->Run(job, sink);
    ASSERT_TRUE(s.ok()) << mode << ": " << s;
    ASSERT_EQ(sink.chunks.size(), 2u) << mode;
    EXPECT_EQ(sink.chunks[0].second.size(), 24u) << mode;
    EXPECT_EQ(sink.chunks[1].second.size(), 24u) << mode;
  }
}

// The runner on another device (tests/engine/host_backed_device.h: CUDA's same-device rule,
// computed on the CPU): the DiT, its KV cache and the VAE live there, the T5 stays on the CPU
// (the tiny config's t5_device), the image prefix crosses over; every mode must make the CPU
// runner's video, to a rounding step of the uint8 frames.
TEST_F(ModelJobRunnerTest, OnAnotherDeviceMakesTheCpusVideo) {
  const std::string png = MakeMedia(*dir_, "device.png", "-frames:v 1");
  ASSERT_FALSE(png.empty());
  ModelRunnerOptions o;
  o.device = HostBackedDevice();
  auto on_device = ModelJobRunner::Load((*dir_ / "tiny").string(), o);
  ASSERT_TRUE(on_device.ok()) << on_device.status();
  EXPECT_EQ((*on_device)->placement(), "DiT privateuseone:0 (KV cache there too), VAE privateuseone:0 float32, T5 cpu");
  EXPECT_EQ(runner_->placement(), "DiT cpu (KV cache there too), VAE cpu float32, T5 cpu");
  for (auto mode : {::magi::v1::MODE_T2V, ::magi::v1::MODE_I2V}) {
    RunnerJob job = Job(48, 0, [&](auto& r) {
      r.set_mode(mode);
      if (mode == ::magi::v1::MODE_I2V) r.set_image(png);
    });
    RecordingSink want, got;
    ASSERT_TRUE(runner_->Run(job, want).ok()) << mode;
    absl::Status s = (*on_device)->Run(job, got);
    ASSERT_TRUE(s.ok()) << mode << ": " << s;
    ASSERT_EQ(got.chunks.size(), want.chunks.size()) << mode;
    int worst = 0;
    for (size_t c = 0; c < want.chunks.size(); ++c) {
      ASSERT_EQ(got.chunks[c].second.size(), want.chunks[c].second.size()) << mode;
      for (size_t f = 0; f < want.chunks[c].second.size(); ++f) {
        const RgbFrame& fa = got.chunks[c].second[f];
        const RgbFrame& fb = want.chunks[c].second[f];
        ASSERT_EQ(fa.width, fb.width);
        ASSERT_EQ(fa.height, fb.height);
        const auto& a = fa.rgb24;
        const auto& b = fb.rgb24;
        for (size_t i = 0; i < static_cast<size_t>(fa.width) * fa.height * 3; ++i) worst = std::max(worst, std::abs(int{a[i]} - int{b[i]}));
      }
    }
    EXPECT_LE(worst, 2) << mode;
  }
}

// A rank-group follower loads no VAE and decodes nothing, but runs the engine's steps and
// stops where the leader does (the stop rule counts frames without decoding).
TEST_F(ModelJobRunnerTest, AFollowerLoadsNoVaeDecodesNothingAndStopsWhereTheLeaderDoes) {
  const fs::path no_vae = NoVaeModel();
  ASSERT_FALSE(ModelJobRunner::Load(no_vae.string()).ok()) << "a leader must need its VAE";
  ModelRunnerOptions o;
  o.follower = true;
  auto follower = ModelJobRunner::Load(no_vae.string(), o);
  ASSERT_TRUE(follower.ok()) << follower.status();
  for (int frames : {28, 3 * 24}) {
    RecordingSink leader_sink, follower_sink;
    ASSERT_TRUE(runner_->Run(Job(frames), leader_sink).ok());
    absl::Status s = (*follower)->Run(Job(frames), follower_sink);
    ASSERT_TRUE(s.ok()) << frames << ": " << s;
    EXPECT_TRUE(follower_sink.chunks.empty()) << frames;
    EXPECT_TRUE(follower_sink.prefix.empty()) << frames;
    EXPECT_EQ(follower_sink.progress_calls.load(), leader_sink.progress_calls.load()) << frames;
    EXPECT_EQ(follower_sink.last.step, leader_sink.last.step) << frames;
    EXPECT_EQ(follower_sink.last.step, follower_sink.last.total_steps) << frames;
  }
}

// A rank group of two model runners (threads over a fake communicator; no DiT sharding): the
// follower loads no VAE, takes the leader's i2v/v2v prefix and stops where the leader does --
// also at lengths where counting 4 frames per latent frame would stop it a chunk early (v2v's
// partly-prefix chunk decodes to 13) and leave the ranks calling different collectives --
// and the group streams what a lone runner streams.
TEST_F(ModelJobRunnerTest, AGroupsFollowerTakesTheLeadersPrefixAndStopsWithIt) {
  const std::string png = MakeMedia(*dir_, "group.png", "-frames:v 1");
  const std::string mp4 = MakeMedia(*dir_, "group.mp4", "-t 1.5 -pix_fmt yuv420p -c:v libx264");
  ASSERT_FALSE(png.empty());
  ASSERT_FALSE(mp4.empty());
  auto job = [&](::magi::v1::Mode mode, int frames) {
    return Job(frames, 0, [&](auto& r) {
      r.set_mode(mode);
      if (mode == ::magi::v1::MODE_I2V) r.set_image(png);
      else r.set_prefix_video(mp4);
    });
  };
  const std::vector<RunnerJob> jobs = {job(::magi::v1::MODE_V2V, 40), job(::magi::v1::MODE_V2V, 48),
                                       job(::magi::v1::MODE_I2V, 28)};
  FakeGroup g(2);
  ModelRunnerOptions lo, fo;
  lo.group_comm = g.comms[0].get();
  fo.group_comm = g.comms[1].get();
  fo.follower = true;
  auto leader = ModelJobRunner::Load((*dir_ / "tiny").string(), lo);
  ASSERT_TRUE(leader.ok()) << leader.status();
  auto follower = ModelJobRunner::Load(NoVaeModel().string(), fo);
  ASSERT_TRUE(follower.ok()) << follower.status();
  absl::Status follower_status;
  std::thread follower_thread([&] { follower_status = RunGroupFollower(**follower, *g.comms[1]); });
  {
    GroupLeaderRunner group(std::move(*leader), *g.comms[0]);
    for (const RunnerJob& j : jobs) {
      const int frames = j.request().num_frames();
      RecordingSink alone, grouped;
      absl::Status s = runner_->Run(j, alone);
      if (s.ok()) s = group.Run(j, grouped);
      EXPECT_TRUE(s.ok()) << j.request().mode() << " " << frames << ": " << s;
      if (!s.ok()) break;
      // (No ASSERT here: the follower's thread must be joined.)
      EXPECT_EQ(grouped.chunks.size(), alone.chunks.size()) << frames;
      for (size_t c = 0; c < std::min(alone.chunks.size(), grouped.chunks.size()); ++c) {
        EXPECT_EQ(grouped.chunks[c].second.size(), alone.chunks[c].second.size()) << frames << " chunk " << c;
        if (grouped.chunks[c].second.size() != alone.chunks[c].second.size()) continue;
        for (size_t f = 0; f < alone.chunks[c].second.size(); ++f) {
          EXPECT_EQ(grouped.chunks[c].second[f].rgb24, alone.chunks[c].second[f].rgb24)
              << j.request().mode() << " " << frames << " chunk " << c << " frame " << f;
        }
      }
    }
  }  // the group's destructor stops the follower
  follower_thread.join();
  EXPECT_TRUE(follower_status.ok()) << follower_status;
}

// CFG-parallel through the runner and the group protocol (#16 item 5): a cfg_number 3 model
// on three ranks (each running one guidance pass per step; rank 0 leads and decodes) streams
// the video one rank makes, frame for frame.
TEST_F(ModelJobRunnerTest, ACfgParallelGroupMakesTheSingleRanksVideo) {
  const fs::path cfg3 = *dir_ / "tiny_cfg3";
  fs::copy(*dir_ / "tiny", cfg3, fs::copy_options::recursive);
  MagiConfig c = TinyModelSetConfig();
  c.runtime.cfg_number = 3;
  c.engine.distill = false;
  std::ofstream((cfg3 / "config.json").string()) << MagiConfigToJson(c);
  auto alone_runner = ModelJobRunner::Load(cfg3.string());
  ASSERT_TRUE(alone_runner.ok()) << alone_runner.status();
  RunnerJob job;
  job.job_id = "j-cfg";
  ::magi::v1::GenerateRequest r;
  r.add_prompts()->set_text("a red ball bounces to the right");
  r.set_num_frames(48);
  r.set_width(64);
  r.set_height(48);
  r.set_seed(3);
  r.set_num_steps(4);
  auto spec = BuildJobSpec(r, (*alone_runner)->Models().front());
  ASSERT_TRUE(spec.ok()) << spec.status();
  job.spec = *spec;
  RecordingSink alone;
  ASSERT_TRUE((*alone_runner)->Run(job, alone).ok());

  constexpr int kRanks = 3;
  FakeGroup world(kRanks), cfg(kRanks);
  std::vector<std::unique_ptr<ModelJobRunner>> runners;
  for (int rank = 0; rank < kRanks; ++rank) {
    ModelRunnerOptions o;
    o.group_comm = world.comms[rank].get();
    o.cfg_comm = cfg.comms[rank].get();
    o.follower = rank > 0;
    auto loaded = ModelJobRunner::Load(cfg3.string(), o);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    runners.push_back(std::move(*loaded));
  }
  std::vector<absl::Status> follower_status(kRanks);
  std::vector<std::thread> followers;
  for (int rank = 1; rank < kRanks; ++rank) {
    followers.emplace_back([&, rank] { follower_status[rank] = RunGroupFollower(*runners[rank], *world.comms[rank]); });
  }
  RecordingSink grouped;
  absl::Status s;
  {
    GroupLeaderRunner group(std::move(runners[0]), *world.comms[0]);
    s = group.Run(job, grouped);
  }  // the group's destructor stops the followers
  for (auto& t : followers) t.join();
  ASSERT_TRUE(s.ok()) << s;
  for (int rank = 1; rank < kRanks; ++rank) EXPECT_TRUE(follower_status[rank].ok()) << follower_status[rank];
  ASSERT_EQ(grouped.chunks.size(), alone.chunks.size());
  for (size_t k = 0; k < alone.chunks.size(); ++k) {
    ASSERT_EQ(grouped.chunks[k].second.size(), alone.chunks[k].second.size());
    for (size_t f = 0; f < alone.chunks[k].second.size(); ++f) {
      EXPECT_EQ(grouped.chunks[k].second[f].rgb24, alone.chunks[k].second[f].rgb24) << "chunk " << k << " frame " << f;
    }
  }
  // A distilled model has one pass: a CFG group is refused at load, naming the flag.
  ModelRunnerOptions distilled;
  distilled.cfg_comm = cfg.comms[0].get();
  auto refused = ModelJobRunner::Load((*dir_ / "tiny").string(), distilled);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--cfg 3"), std::string::npos) << refused.status();
  EXPECT_NE(refused.status().message().find("needs cfg_number 3"), std::string::npos) << refused.status();
  // Several jobs on a CFG group need a CFG channel per slot (RankGroup::cfg_channel).
  ModelRunnerOptions two;
  two.max_concurrent_jobs = 2;
  two.cfg_comm = cfg.comms[0].get();
  auto unchanneled = ModelJobRunner::Load(cfg3.string(), two);
  ASSERT_FALSE(unchanneled.ok());
  EXPECT_NE(unchanneled.status().message().find("one CFG channel per slot (got 0"), std::string::npos)
      << unchanneled.status();
}

TEST_F(ModelJobRunnerTest, HonoursCancel) {
  RecordingSink sink;
  sink.cancel_after_chunks = 1;
  // 8 chunks: while chunk 0 is delivered the engine can run at most 3 chunks ahead (one being
  // delivered, two queued, it waits to push the next), so model calls are still to come when
  // the cancel is set. With 4 chunks the engine could finish before it, under load.
  absl::Status s = runner_->Run(Job(8 * 24), sink);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  // The engine stops at its next check; a chunk it had already queued for delivery while the
  // cancelling one was being delivered may still be handed over, none after.
  ASSERT_GE(sink.chunks.size(), 1u);
  EXPECT_LE(sink.chunks.size(), 2u);
  for (size_t i = 0; i < sink.chunks.size(); ++i) EXPECT_EQ(sink.chunks[i].first, static_cast<int>(i));
  // Inline delivery: nothing after the cancelling chunk.
  ModelRunnerOptions inline_options;
  inline_options.overlap_decode = false;
  auto inline_runner = ModelJobRunner::Load((*dir_ / "tiny").string(), inline_options);
  ASSERT_TRUE(inline_runner.ok()) << inline_runner.status();
  RecordingSink inline_sink;
  inline_sink.cancel_after_chunks = 1;
  EXPECT_EQ((*inline_runner)->Run(Job(8 * 24), inline_sink).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(inline_sink.chunks.size(), 1u);
}

// Issue #16 item 5: a chunk is decoded and delivered while the engine computes the next
// stage. The engine reports the step that made chunk 0 clean only after handing chunk 0 over
// (kStop skips that report), so with inline delivery that report cannot arrive while the sink
// holds chunk 0; with the delivery thread it comes at once (the first chunk never waits for
// queue space). The inline run tells which step that is; the overlapped run's sink holds chunk
// 0 until it sees it (up to 10 s). The video equals the inline delivery's frame for frame.
TEST_F(ModelJobRunnerTest, DeliversAChunkWhileTheEngineComputesTheNext) {
  ModelRunnerOptions inline_options;
  inline_options.overlap_decode = false;
  auto inline_runner = ModelJobRunner::Load((*dir_ / "tiny").string(), inline_options);
  ASSERT_TRUE(inline_runner.ok()) << inline_runner.status();
  RecordingSink inline_sink;
  int step_before_chunk0 = -1;
  inline_sink.on_chunk = [&](int index) {
    if (index != 0) return;
    std::lock_guard<std::mutex> lock(inline_sink.mu);
    step_before_chunk0 = inline_sink.last.step;
  };
  ASSERT_TRUE((*inline_runner)->Run(Job(4 * 24), inline_sink).ok());
  ASSERT_EQ(inline_sink.chunks.size(), 4u);
  ASSERT_GE(step_before_chunk0, 0);
  const int clean_step = step_before_chunk0 + 1;  // the report that follows chunk 0's hand-over

  RecordingSink sink;
  bool stepped_meanwhile = false;
  sink.on_chunk = [&](int index) {
    if (index != 0) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(sink.mu);
        if (sink.last.step >= clean_step) {
          stepped_meanwhile = true;
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  };
  ASSERT_TRUE(runner_->Run(Job(4 * 24), sink).ok());
  EXPECT_TRUE(stepped_meanwhile) << "the engine reported no step " << clean_step
                                 << " while chunk 0 was being delivered";
  ASSERT_EQ(sink.chunks.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(sink.chunks[i].second.size(), inline_sink.chunks[i].second.size());
    for (size_t f = 0; f < sink.chunks[i].second.size(); ++f) {
      EXPECT_EQ(sink.chunks[i].second[f].rgb24, inline_sink.chunks[i].second[f].rgb24) << "chunk " << i << " frame " << f;
    }
  }
}

// A delivery that fails (the stream gone, an encoder error) ends the run with its error, not
// with the engine's cancellation or a later chunk.
TEST_F(ModelJobRunnerTest, AFailedDeliveryEndsTheRunWithItsError) {
  class FailingSink : public RecordingSink {
   public:
    absl::Status OnChunk(int index, const std::vector<RgbFrame>& frames) override {
      if (index == 1) {
        cancel = true;  // as JobExecutor does when the stream is gone
        return absl::UnavailableError("server stream gone");
      }
      return RecordingSink::OnChunk(index, frames);
    }
  } sink;
  absl::Status s = runner_->Run(Job(4 * 24), sink);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(sink.chunks.size(), 1u);
}

TEST_F(ModelJobRunnerTest, RejectsWhatTheModelCannotServeNamingTheField) {
  struct Case {
    const char* field;
    std::function<void(RunnerJob&)> mutate;
  } cases[] = {
      {"width", [](RunnerJob& j) { j.spec.mutable_request()->set_width(40); }},
      {"width", [](RunnerJob& j) { j.spec.mutable_request()->set_width(16); }},
      {"height", [](RunnerJob& j) { j.spec.mutable_request()->set_height(4096); }},
      {"num_frames", [](RunnerJob& j) { j.spec.mutable_request()->set_num_frames(26); }},
      {"num_steps", [](RunnerJob& j) { j.spec.mutable_request()->set_num_steps(6); }},
      {"guidance.cfg_number", [](RunnerJob& j) { j.spec.mutable_request()->mutable_guidance()->set_cfg_number(3); }},
      {"model", [](RunnerJob& j) { j.spec.mutable_request()->set_model("big"); }},
      {"frames_per_chunk", [](RunnerJob& j) { j.spec.set_frames_per_chunk(8); }},
      {"image", [](RunnerJob& j) {
         j.spec.mutable_request()->set_mode(::magi::v1::MODE_I2V);
         j.spec.mutable_request()->set_image("not an image");
       }},
  };
  for (const auto& c : cases) {
    RunnerJob job = Job(24);
    c.mutate(job);
    RecordingSink sink;
    absl::Status s = runner_->Run(job, sink);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field << ": " << s;
    EXPECT_EQ(s.message().rfind(c.field, 0), 0u) << c.field << ": " << s;
    EXPECT_TRUE(sink.chunks.empty());
  }
}

// A served t2v job on the tiny set is conditioned like the reference's run scripts
// (PAD_HQ=1 PAD_DURATION=1): every generated chunk's caption row is [DURATION_k, HQ, T5...].
TEST_F(ModelJobRunnerTest, ServedT2vJobPadsHqAndDurationTokens) {
  std::vector<ChunkCaptions> seen;
  ModelRunnerOptions o;
  o.on_captions = [&](const ChunkCaptions& c) { seen.push_back(c); };
  auto runner = ModelJobRunner::Load((*dir_ / "tiny").string(), o);
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->Models()[0].special_tokens().size(), 2);
  EXPECT_EQ((*runner)->Models()[0].special_tokens(0), "PAD_HQ");
  EXPECT_EQ((*runner)->Models()[0].special_tokens(1), "PAD_DURATION");
  EXPECT_NE((*runner)->conditioning().find("special tokens PAD_HQ, PAD_DURATION"), std::string::npos);
  auto tokens = SpecialTokens::Load((*dir_ / "tiny" / "special_tokens.npz").string());
  ASSERT_TRUE(tokens.ok()) << tokens.status();

  RecordingSink sink;
  ASSERT_TRUE((*runner)->Run(Job(3 * 24), sink).ok());
  ASSERT_EQ(seen.size(), 1u);
  const ChunkCaptions& c = seen[0];
  ASSERT_EQ(c.text_rows.size(), 3u);  // 72 frames = 3 chunks of 6 latent frames
  for (int i = 0; i < 3; ++i) {
    const at::Tensor& row = c.text_rows[i];
    const at::Tensor& mask = c.text_masks[i];
    // DURATION_k: other_tokens[7 + chunks still to come after this one], then HQ.
    EXPECT_TRUE(at::equal(row[0], (*tokens)->other(7 + (2 - i))[0])) << "chunk " << i;
    EXPECT_TRUE(at::equal(row[1], (*tokens)->other(1)[0])) << "chunk " << i;
    EXPECT_FALSE(at::equal(row[2], (*tokens)->other(1)[0]));
    EXPECT_EQ(mask[0].item<float>(), 1.0f);
    EXPECT_EQ(mask[1].item<float>(), 1.0f);
    EXPECT_EQ(mask.size(0), 32);  // cut back to caption_max_length
  }
  // The caption behind the tokens is the same T5 row for every chunk.
  EXPECT_TRUE(at::equal(c.text_rows[0].narrow(0, 2, 30), c.text_rows[2].narrow(0, 2, 30)));
  EXPECT_EQ(c.text_masks[0].sum().item<float>(), c.text_masks[2].sum().item<float>());
  // Null rows: no NEG_PROMPT by default.
  EXPECT_EQ(c.null_mask.sum().item<float>(), 32);
}

// serving_config decides; enabled tokens without special_tokens.npz do not load.
TEST_F(ModelJobRunnerTest, ServingConfigTokensNeedTheTokenFile) {
  const fs::path tiny = *dir_ / "tiny", other = *dir_ / "no_tokens";
  fs::create_directories(other);
  for (const char* sub : {"dit", "t5", "vae"}) fs::create_directory_symlink(tiny / sub, other / sub);
  fs::copy_file(tiny / "config.json", other / "config.json");
  auto missing = ModelJobRunner::Load(other.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string msg(missing.status().message());
  EXPECT_NE(msg.find("PAD_HQ, PAD_DURATION"), std::string::npos) << msg;
  EXPECT_NE(msg.find((other / "special_tokens.npz").string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("serving_config.pad_hq"), std::string::npos) << msg;

  auto config = LoadMagiConfig((tiny / "config.json").string());
  ASSERT_TRUE(config.ok());
  config->serving.special_tokens = SpecialTokenFlags();
  std::ofstream(other / "config.json") << MagiConfigToJson(*config);
  std::vector<ChunkCaptions> seen;
  ModelRunnerOptions o;
  o.on_captions = [&](const ChunkCaptions& c) { seen.push_back(c); };
  auto plain = ModelJobRunner::Load(other.string(), o);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ((*plain)->Models()[0].special_tokens_size(), 0);
  EXPECT_NE((*plain)->conditioning().find("special tokens none"), std::string::npos);
  RecordingSink sink;
  ASSERT_TRUE((*plain)->Run(Job(24), sink).ok());
  ASSERT_EQ(seen.size(), 1u);
  // No tokens: the mask is the T5 mask (valid tokens first), no prepended entries.
  const float valid = seen[0].text_masks[0].sum().item<float>();
  EXPECT_GT(valid, 1.0f);
  EXPECT_EQ(seen[0].text_masks[0].narrow(0, 0, static_cast<int64_t>(valid)).sum().item<float>(), valid);
}

}  // namespace
}  // namespace magi
