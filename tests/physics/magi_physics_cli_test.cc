// magi-physics as a user runs it: scene files, eval with --export_context and --generated
// (PPM folders and MP4s), bad flags.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "physics/continuation_eval.h"
#include "physics/ppm.h"
#include "physics/world.h"

namespace magi {
namespace physics {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int rc = -1;
  std::string output;  // stdout and stderr
};

CliRun Cli(const std::string& args) {
  CliRun r;
  const std::string cmd = absl::StrCat(MAGI_PHYSICS_BIN, " ", args, " 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The Physics IQ column of the row `method` in a printed table; -1 when there is no such row.
double RowScore(const std::string& output, const std::string& method) {
  const size_t row = output.find(method);
  if (row == std::string::npos) return -1.0;
  return std::stod(output.substr(row + method.size(), 30));
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("magi_physics_cli_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CliTest, SceneWritesTheRenderedFramesLabelsVideoAndCaption) {
  const fs::path out = dir_ / "s7";
  const CliRun r = Cli(absl::StrCat("scene --seed 7 --frames 10 --size 32 --out ", out.string()));
  ASSERT_EQ(r.rc, 0) << r.output;
  const Scene scene = MakeScene(7);
  EXPECT_EQ(ReadText((out / "caption.txt").string()), Caption(scene) + "\n");
  absl::StatusOr<std::vector<RgbFrame>> expected = RenderSceneRgb(scene, 32, 10);
  ASSERT_TRUE(expected.ok());
  absl::StatusOr<std::vector<RgbFrame>> written = ReadFrameFolder(out.string(), 100);
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_EQ(written->size(), 10u);
  for (size_t t = 0; t < 10; ++t) EXPECT_EQ((*written)[t].rgb24, (*expected)[t].rgb24) << t;
  EXPECT_TRUE(fs::is_regular_file(out / "labels_0009.pgm"));
  EXPECT_GT(fs::file_size(out / "video.mp4"), 100u);
}

TEST_F(CliTest, EvalScoresGeneratedFoldersAndMp4s) {
  const std::string common = "eval --scenes 3 --seed 5 --frames 36 --context_frames 12";
  const fs::path ctx = dir_ / "ctx";
  CliRun r = Cli(absl::StrCat(common, " --export_context ", ctx.string()));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_LT(RowScore(r.output, "repeat last frame"), 100.0) << r.output;
  EXPECT_GE(RowScore(r.output, "repeat last frame"), 0.0) << r.output;
  const fs::path frames = dir_ / "frames", mp4 = dir_ / "mp4";
  fs::create_directories(mp4);
  for (int i = 0; i < 3; ++i) {
    const std::string seed = ReadText((ctx / absl::StrCat("scene_", i, ".seed")).string());
    ASSERT_EQ(seed, absl::StrCat(EvalSceneSeed(5, i), "\n"));
    // The caption of the scene as the context ends (frame 11 of 12).
    EXPECT_EQ(ReadText((ctx / absl::StrCat("scene_", i, ".txt")).string()),
              CaptionAtFrame(MakeScene(EvalSceneSeed(5, i)), 11) + "\n");
    EXPECT_TRUE(fs::is_regular_file(ctx / absl::StrCat("scene_", i, "_context.mp4")));
    // The true continuation as a frame folder...
    absl::StatusOr<std::vector<RgbFrame>> all =
        RenderSceneRgb(MakeScene(EvalSceneSeed(5, i)), 64, 36);
    ASSERT_TRUE(all.ok());
    const fs::path folder = frames / absl::StrCat("scene_", i);
    fs::create_directories(folder);
    ASSERT_TRUE(
        WriteFrameFolder(folder.string(), std::vector<RgbFrame>(all->begin() + 12, all->end()))
            .ok());
    // ...and the whole true video as the CLI's own MP4.
    const fs::path full = dir_ / absl::StrCat("full", i);
    r = Cli(absl::StrCat("scene --seed ", seed.substr(0, seed.size() - 1), " --frames 36 --out ",
                         full.string()));
    ASSERT_EQ(r.rc, 0) << r.output;
    fs::copy_file(full / "video.mp4", mp4 / absl::StrCat("scene_", i, ".mp4"));
  }
  r = Cli(absl::StrCat(common, " --generated ", frames.string()));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(RowScore(r.output, "generated (frames)"), 100.0) << r.output;
  r = Cli(absl::StrCat(common, " --generated ", mp4.string()));
  ASSERT_EQ(r.rc, 0) << r.output;
  const double score = RowScore(r.output, "generated (mp4)");
  EXPECT_GT(score, 90.0) << "H.264 at CRF 12 keeps nearly everything\n" << r.output;
  EXPECT_LT(score, 100.0) << "but not bit-exact";
  // One scene short: the error names the flag, the scene and the counts.
  r = Cli(absl::StrCat("eval --scenes 4 --seed 5 --frames 36 --context_frames 12 --generated ",
                       frames.string()));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("scene 3: --generated: neither"), std::string::npos) << r.output;
  r = Cli(absl::StrCat("eval --scenes 3 --seed 5 --frames 36 --context_frames 11 --generated ",
                       frames.string()));
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("has 24 frames; need 25 (the continuation) or 36"), std::string::npos)
      << r.output;
}

TEST_F(CliTest, BadFlagsExit2NamingTheFlagAndRange) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"eval --scenes 0", "--scenes is 0; allowed: [1, 10000]"},
      {"eval --context_frames 95", "--context_frames is 95; allowed: [1, 94]"},
      {"eval --size 40", "--size is 40; allowed: a multiple of 16 in [16, 256]"},
      {"eval --frobs 1", "unknown flag --frobs"},
      {"scene --seed 1 --frames 0 --out x", "--frames is 0; allowed: [1, 1024]"},
      {"scene --out x", "--seed is required"},
      {"scene --seed -3 --out x", "--seed is '-3'"},
      {"walk", "unknown command 'walk'"},
  };
  for (const auto& [args, expect] : cases) {
    const CliRun r = Cli(args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(expect), std::string::npos) << args << "\n" << r.output;
  }
  EXPECT_EQ(Cli("help").rc, 0);
}

}  // namespace
}  // namespace physics
}  // namespace magi
