// Property test: the edge (the server's validator, building the JobSpec against the catalog's
// built-in "tiny" declaration) and the tiny model runner's own checks (its config-derived
// rules and the engine's plan, ModelJobRunner::Check) agree on every request: none is accepted
// by one and refused by the other. Seeded and bounded, so a failure reproduces.
//
// The requests vary what the model constrains (mode: t2v, i2v, v2v; frames, sizes, steps,
// cfg); prompts, scheduling fields and media contents are the edge's alone and stay valid here.
// (v2v: the runner checks the engine's plan only once the prefix video is decoded, so here the
// request's own rules and the job's geometry are compared.)
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "jobspec/job_spec.h"
#include "server/model_catalog.h"
#include "server/request_validator.h"
#include "worker/runner/model_job_runner.h"
#include "worker/runner/tiny_model.h"

namespace magi {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kNow = 1'700'000'000'000;

// The job the runner would have been handed for `r` if the edge checked nothing about the
// model: defaults filled, chunks of the declared size (what the server sent before JobSpec).
RunnerJob UncheckedJob(const ::magi::v1::GenerateRequest& in, const ::magi::internal::v1::ModelInfo& m) {
  RunnerJob job;
  job.job_id = "unchecked";
  ::magi::v1::GenerateRequest& r = *job.spec.mutable_request();
  r = in;
  r.set_model(m.name());
  if (r.mode() == ::magi::v1::MODE_UNSPECIFIED) r.set_mode(::magi::v1::MODE_T2V);
  if (r.num_frames() == 0) r.set_num_frames(m.default_frames());
  if (r.width() == 0) r.set_width(m.default_width());
  if (r.height() == 0) r.set_height(m.default_height());
  if (r.fps() == 0) r.set_fps(m.default_fps());
  if (r.num_steps() == 0) r.set_num_steps(m.default_steps());
  if (r.seed() == 0) r.set_seed(m.default_seed());
  job.spec.set_frames_per_chunk(m.frames_per_chunk());
  job.spec.set_frames_per_latent(m.frames_multiple());
  job.spec.set_latent_frames_per_chunk(m.latent_frames_per_chunk());
  job.spec.set_chunks_total(r.num_frames() > 0 ? (r.num_frames() + m.frames_per_chunk() - 1) / m.frames_per_chunk() : 0);
  const bool i2v = r.mode() == ::magi::v1::MODE_I2V, v2v = r.mode() == ::magi::v1::MODE_V2V;
  job.spec.set_prefix_latent_frames(i2v ? 1 : 0);  // v2v: known once the video is decoded
  job.spec.set_engine_frames(i2v ? r.num_frames() - m.frames_multiple()
                                 : v2v ? r.num_frames() + m.frames_per_chunk() : r.num_frames());
  return job;
}

TEST(JobSpecAgreementTest, EdgeAndRunnerAcceptTheSameRequests) {
  const fs::path dir = fs::temp_directory_path() / ("magi_agreement_test_" + std::to_string(::getpid()));
  ASSERT_TRUE(WriteTinyModelSet((dir / "tiny").string()).ok());
  auto runner = ModelJobRunner::Load((dir / "tiny").string());
  ASSERT_TRUE(runner.ok()) << runner.status();
  const auto info = (*runner)->Models().front();
  ModelCatalog catalog;  // the server's built-in "tiny", as before any worker registers
  RequestLimits limits;
  limits.decode_media = false;  // contents are not the model's constraint

  std::mt19937 rng(20240613);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int accepted = 0, refused = 0, v2v_accepted = 0, v2v_refused = 0;
  for (int i = 0; i < 1500; ++i) {
    ::magi::v1::GenerateRequest r;
    r.add_prompts()->set_text("a fox");
    switch (pick(0, 5)) {
      case 0: break;  // unspecified: t2v
      case 1: r.set_mode(::magi::v1::MODE_T2V); break;
      case 2:
      case 3: r.set_mode(::magi::v1::MODE_I2V); r.set_image("image bytes"); break;
      default: r.set_mode(::magi::v1::MODE_V2V); r.set_prefix_video("video bytes"); break;
    }
    // Near the interesting multiples more often than not.
    r.set_num_frames(pick(0, 3) == 0 ? 0 : pick(0, 2) == 0 ? pick(-4, 1000) : 4 * pick(0, 60) + pick(-1, 1));
    auto size = [&] { return pick(0, 3) == 0 ? 0 : pick(0, 3) ? 16 * pick(1, 33) : pick(0, 1) ? 8 * pick(0, 70) : pick(-2, 600); };
    r.set_width(size());
    r.set_height(size());
    r.set_num_steps(pick(0, 3) == 0 ? 0 : pick(0, 1) ? 4 * pick(0, 17) : pick(-1, 70));
    r.set_fps(pick(0, 120));
    r.set_seed(pick(0, 3) == 0 ? 0 : pick(1, 1 << 30));
    if (pick(0, 2) == 0) r.mutable_guidance()->set_cfg_number(pick(0, 4));

    auto edge = ValidateGenerateRequest(r, catalog, kNow, limits);
    absl::Status at_runner = edge.ok() ? [&] {
      RunnerJob job;
      job.job_id = "edge";
      job.spec = edge->spec;
      return (*runner)->Check(job);
    }() : (*runner)->Check(UncheckedJob(r, info));
    ASSERT_EQ(edge.ok(), at_runner.ok())
        << "request " << i << " {" << r.ShortDebugString() << "}\n  edge: "
        << (edge.ok() ? "accepted" : edge.status().ToString()) << "\n  runner: " << at_runner;
    if (!edge.ok()) {
      EXPECT_TRUE(absl::IsInvalidArgument(edge.status())) << edge.status();
      EXPECT_TRUE(absl::IsInvalidArgument(at_runner)) << at_runner;
    }
    (edge.ok() ? accepted : refused)++;
    if (r.mode() == ::magi::v1::MODE_V2V) (edge.ok() ? v2v_accepted : v2v_refused)++;
  }
  // The draw covers both sides of the rules.
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 100);
  EXPECT_GT(v2v_accepted, 30);
  EXPECT_GT(v2v_refused, 30);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace magi
