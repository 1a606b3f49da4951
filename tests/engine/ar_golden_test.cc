// The 'ar' golden cases of shared/golden/A through the same code as magi-golden, and the
// recorded run-script env (tools/golden/ar_env.h) those cases are replayed with.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/golden_required.h"
#include <nlohmann/json.hpp>

#include "tools/golden/ar_env.h"
#include "tools/golden/golden_report.h"
#include "worker/model/special_tokens.h"

namespace magi {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(ArGolden, EveryCaseOfFolderAPasses) {
  GoldenContext ctx;
  ctx.dir = MAGI_GOLDEN_DIR;
  GoldenReport report(stdout);
  RunArCases(ctx, report);
  std::printf("%s\n", report.Summary().c_str());
  EXPECT_EQ(report.failed(), 0);
  EXPECT_EQ(report.skipped(), 0);
  // Folder A: 7 AR cases, 171 checks (magi-golden prints them). A case or check that stops
  // running must fail this, so the count is exact; a new golden case updates it.
  EXPECT_EQ(report.passed(), 171);
}

// A scratch folder removed at the end.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& stem)
      : path_(fs::temp_directory_path() / (stem + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

constexpr int64_t kC = 4;
// other_tokens row r = r + 1/16 in every column (exact in fp16), caption 0.5, logo 0.25.
void WriteSmallTokens(const fs::path& file) {
  at::Tensor other = at::arange(100, at::kDouble).view({100, 1}).expand({100, kC}).contiguous() + 1.0 / 16;
  ASSERT_TRUE(WriteSpecialTokens(file.string(), at::full({1, kC}, 0.5, at::kDouble),
                                 at::full({1, kC}, 0.25, at::kDouble), other)
                  .ok());
}

TEST(ArGoldenEnv, HqAndDurationFromTheFolderTokenFile) {
  ScratchDir dir("magi_ar_env");
  WriteSmallTokens(dir.path() / "special_tokens.npz");
  auto env = ApplyArCaseEnv(json{{"PAD_HQ", "1"}, {"PAD_DURATION", "1"}, {"NEG_PROMPT", nullptr},
                                 {"prev_chunks_scale", nullptr}},
                            dir.path().string(), kC, "case");
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->token_file, (dir.path() / "special_tokens.npz").string());
  EXPECT_EQ(env->env.prev_chunks_scale, 0.7);
  // The caption rows the engine builds with them: 1 prefix chunk + 3 denoised chunks.
  const int64_t L = 5;
  EncodedChunkPrompt p;
  p.caption = at::arange(L * kC, at::kFloat).view({L, kC}) + 1000;
  p.mask = at::tensor(std::vector<float>{1, 1, 0, 0, 0});
  at::Tensor null = at::full({L, kC}, -1.0f);
  auto c = BuildChunkCaptions({p}, null, 4, 1, env->tokens);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(at::equal(c->text_rows[0], null));
  for (int i = 0; i < 3; ++i) {
    const at::Tensor& row = c->text_rows[1 + i];
    // DURATION_k = other_tokens[7 + min(chunks after this one, 7)], then HQ = other_tokens[1].
    EXPECT_EQ(row[0][0].item<float>(), 7 + (2 - i) + 1.0f / 16) << i;
    EXPECT_EQ(row[1][0].item<float>(), 1 + 1.0f / 16);
    EXPECT_TRUE(at::equal(row.narrow(0, 2, 3), p.caption.narrow(0, 0, 3)));
    EXPECT_TRUE(at::equal(c->text_masks[1 + i], at::tensor(std::vector<float>{1, 1, 1, 1, 0})));
  }
  EXPECT_TRUE(at::equal(c->null_row, null));  // no NEG_PROMPT
  EXPECT_EQ(c->null_mask.sum().item<float>(), L);

  // SPECIAL_TOKEN_PATH as the reference's default path: not found as given, so the file of
  // that basename in the folder; Python-style booleans and a number are read as str().
  auto rel = ApplyArCaseEnv(json{{"PAD_HQ", true}, {"NEG_PROMPT", "yes"}, {"prev_chunks_scale", 0.25},
                                 {"SPECIAL_TOKEN_PATH", "example/assets/special_tokens.npz"}},
                            dir.path().string(), kC, "case");
  ASSERT_TRUE(rel.ok()) << rel.status();
  EXPECT_EQ(rel->token_file, (dir.path() / "special_tokens.npz").string());
  EXPECT_EQ(rel->tokens.prompt_tokens.size(), 1u);
  EXPECT_FALSE(rel->tokens.duration_tokens.defined());
  EXPECT_EQ(rel->tokens.negative_tokens.size(), 4u);
  EXPECT_EQ(rel->env.prev_chunks_scale, 0.25);
}

TEST(ArGoldenEnv, AnEnvThatCannotBeAppliedFails) {
  ScratchDir dir("magi_ar_env_bad");
  auto expect = [&](const json& env, const std::string& what) {
    auto r = ApplyArCaseEnv(env, dir.path().string(), kC, "ar_x env");
    ASSERT_FALSE(r.ok()) << env.dump();
    EXPECT_NE(std::string(r.status().message()).find(what), std::string::npos) << r.status();
    EXPECT_NE(std::string(r.status().message()).find("ar_x env"), std::string::npos) << r.status();
  };
  expect(json{{"PAD_HQ", "1"}, {"PAD_DURATION", "1"}}, "PAD_HQ, PAD_DURATION but the special-token file");
  expect(json{{"NEG_PROMPT", "on"}, {"SPECIAL_TOKEN_PATH", "/nowhere/tokens.npz"}}, "/nowhere/tokens.npz");
  expect(json{{"PAD_HQ", "1"}, {"OFFLOAD_SOMETHING", "true"}}, "OFFLOAD_SOMETHING");
  expect(json{{"prev_chunks_scale", "seven"}}, "prev_chunks_scale");
  expect(json{{"PAD_HQ", json::array({1})}}, "PAD_HQ");
  expect(json::array(), "env must be an object");
  WriteSmallTokens(dir.path() / "special_tokens.npz");
  auto wide = ApplyArCaseEnv(json{{"PAD_HQ", "1"}}, dir.path().string(), kC + 1, "ar_x env");
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(std::string(wide.status().message()).find("caption_channels"), std::string::npos);
  // Nothing enabled: nothing needed, whatever the folder holds.
  EXPECT_TRUE(ApplyArCaseEnv(json{{"PAD_HQ", "0"}, {"NEG_PROMPT", nullptr}}, dir.path().string(), kC, "c").ok());
  EXPECT_TRUE(ApplyArCaseEnv(json(), dir.path().string(), kC, "c").ok());
}

// Through the checker: a case recording PAD_HQ=1 in a folder without the token file FAILS
// (it is not replayed without the token, which would pass silently).
TEST(ArGoldenEnv, CheckerFailsACaseWhoseEnvItCannotApply) {
  const fs::path golden(MAGI_GOLDEN_DIR);
  if (!fs::exists(golden / "ar_cfg3.safetensors")) MAGI_SKIP_WITHOUT_GOLDEN("no golden folder at " << golden);
  ScratchDir dir("magi_ar_env_case");
  fs::create_symlink(golden / "ar_cfg3.safetensors", dir.path() / "ar_cfg3.safetensors");
  fs::create_symlink(golden / "weights.safetensors", dir.path() / "weights.safetensors");
  json j = json::parse(std::ifstream(golden / "golden.json"));
  j["ar_cfg3"]["env"]["PAD_HQ"] = "1";
  std::ofstream(dir.path() / "golden.json") << j.dump();
  char* buf = nullptr;
  size_t size = 0;
  FILE* out = open_memstream(&buf, &size);
  GoldenReport report(out);
  GoldenContext ctx;
  ctx.dir = dir.path().string();
  RunArCases(ctx, report);
  std::fclose(out);
  const std::string text(buf, size);
  std::free(buf);
  EXPECT_EQ(report.failed(), 1) << text;
  EXPECT_EQ(report.passed(), 0) << text;
  EXPECT_NE(text.find("ar_cfg3/env"), std::string::npos) << text;
  EXPECT_NE(text.find("PAD_HQ"), std::string::npos) << text;
}

}  // namespace
}  // namespace magi
