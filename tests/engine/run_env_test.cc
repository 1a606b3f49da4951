#include "worker/engine/run_env.h"

#include <gtest/gtest.h>

namespace magi {
namespace {

TEST(RunEnv, ReferenceTruthiness) {
  for (const char* t : {"1", "true", "TRUE", "True", "yes", "Y", "y", "on", "ON", "enabled", "Enabled"}) {
    EXPECT_TRUE(EnvIsTrue(t)) << t;
  }
  // Everything else is false in the reference (no error): it is what env_is_true returns.
  for (const char* f : {"0", "", "false", "no", "off", "2", " 1", "1 ", "tru", "enable"}) EXPECT_FALSE(EnvIsTrue(f)) << f;
}

TEST(RunEnv, ParsesFlagsScaleAndPath) {
  auto e = ParseRunEnv({{"PAD_HQ", "1"}, {"PAD_DURATION", "True"}, {"NEG_PROMPT", "0"}, {"PAD_STATIC", std::nullopt},
                        {"prev_chunks_scale", " 0.5 "}, {"SPECIAL_TOKEN_PATH", "example/assets/special_tokens.npz"},
                        {"SOMETHING_ELSE", std::nullopt}},
                       "case");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->special_tokens.EnabledNames(), (std::vector<std::string>{"PAD_HQ", "PAD_DURATION"}));
  EXPECT_EQ(e->prev_chunks_scale, 0.5);
  EXPECT_EQ(e->special_token_path, "example/assets/special_tokens.npz");
  auto empty = ParseRunEnv({}, "case");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->special_tokens.any());
  EXPECT_EQ(empty->prev_chunks_scale, 0.7);  // the reference's default
}

TEST(RunEnv, UnappliableValuesAreErrors) {
  auto expect = [](const absl::StatusOr<RunEnv>& r, const std::string& what) {
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(what), std::string::npos) << r.status();
    EXPECT_NE(std::string(r.status().message()).find("where"), std::string::npos) << r.status();
  };
  expect(ParseRunEnv({{"prev_chunks_scale", "abc"}}, "where"), "prev_chunks_scale must be a finite number");
  expect(ParseRunEnv({{"prev_chunks_scale", "nan"}}, "where"), "prev_chunks_scale");
  expect(ParseRunEnv({{"PAD_HD", "1"}}, "where"), "PAD_HD");
  expect(ParseRunEnv({{"PAD_HD", "1"}}, "where"), "known: PAD_STATIC");
  expect(ParseRunEnv({{"SPECIAL_TOKEN_PATH", ""}}, "where"), "SPECIAL_TOKEN_PATH");
}

}  // namespace
}  // namespace magi
