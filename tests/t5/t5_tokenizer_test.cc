// Tokenizer against tokenize.json (every case, both lengths).
#include "worker/t5/t5_tokenizer.h"

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace magi {
namespace {

TEST(T5TokenizerTest, MatchesGolden) {
  auto tok = T5Tokenizer::Load(std::string(MAGI_GOLDEN_DIR) + "/spiece.model");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 1100);
  std::ifstream in(std::string(MAGI_GOLDEN_DIR) + "/tokenize.json");
  const auto j = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& c : j["cases"]) {
    for (int64_t L : {800, 16}) {
      auto t = (*tok)->Encode(c["text"].get<std::string>(), L);
      ASSERT_TRUE(t.ok());
      const auto& want = c["max_length_" + std::to_string(L)];
      EXPECT_EQ(t->input_ids, want["input_ids"].get<std::vector<int64_t>>()) << c["id"] << " " << L;
      EXPECT_EQ(t->attention_mask, want["attention_mask"].get<std::vector<int64_t>>()) << c["id"] << " " << L;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 80);
}

TEST(T5TokenizerTest, Errors) {
  EXPECT_FALSE(T5Tokenizer::Load("/nonexistent/spiece.model").ok());
  auto tok = T5Tokenizer::Load(std::string(MAGI_GOLDEN_DIR) + "/spiece.model");
  ASSERT_TRUE(tok.ok());
  EXPECT_FALSE((*tok)->Encode("a\xff", 16).ok());
  EXPECT_FALSE((*tok)->Encode("a", 0).ok());
  auto one = (*tok)->Encode("anything at all", 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->input_ids, std::vector<int64_t>{1});
}

}  // namespace
}  // namespace magi
