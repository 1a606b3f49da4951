// Embedding cache and caption encoder. (Special tokens and caption rows: tests/model and
// tests/engine.)
#include <ATen/ATen.h>

#include <gtest/gtest.h>

#include "worker/t5/caption_encoder.h"
#include "worker/t5/embedding_cache.h"
#include "worker/t5/t5_encoder.h"
#include "worker/t5/t5_tokenizer.h"

namespace magi {
namespace {

TEST(EmbeddingCacheTest, LruByBytes) {
  const CachedEmbedding e{at::zeros({1, 4, 4}), at::zeros({1, 4}, at::kLong)};  // 64 + 32 bytes
  EmbeddingCache cache(2 * (96 + 1));
  cache.Insert("a", e);
  cache.Insert("b", e);
  EXPECT_TRUE(cache.Lookup("a").has_value());  // a is now most recent
  cache.Insert("c", e);                        // evicts b
  EXPECT_FALSE(cache.Lookup("b").has_value());
  EXPECT_TRUE(cache.Lookup("c").has_value());
  EXPECT_EQ(cache.hits(), 2);
  EXPECT_EQ(cache.misses(), 1);
  EXPECT_EQ(cache.entries(), 2);
  cache.Insert("huge", CachedEmbedding{at::zeros({1, 100, 100}), at::zeros({1, 100}, at::kLong)});
  EXPECT_EQ(cache.entries(), 2);
}

TEST(CaptionEncoderTest, ValidatesAndCaches) {
  const std::string dir = MAGI_GOLDEN_DIR;
  auto tok = T5Tokenizer::Load(dir + "/spiece.model");
  auto enc = T5Encoder::LoadFiles(dir + "/t5_config.json", dir + "/t5_weights.safetensors");
  ASSERT_TRUE(tok.ok() && enc.ok());
  CaptionEncoderOptions opt;
  opt.max_length = 16;
  opt.max_prompt_bytes = 64;
  CaptionEncoder ce(tok->get(), enc->get(), opt);
  for (const std::string bad : {std::string(""), std::string("  \n"), std::string(65, 'a'), std::string("a\xc3")}) {
    auto r = ce.Encode(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(std::string(r.status().message()).find("prompt"), std::string::npos);
  }
  auto first = ce.Encode("\"Good Boy\"");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->cleaned, "good boy");
  EXPECT_EQ(first->valid_tokens, 8);
  EXPECT_FALSE(first->cache_hit);
  auto again = ce.Encode("GOOD   boy");  // cleans to the same text
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->cache_hit);
  EXPECT_TRUE(at::equal(again->embedding, first->embedding));
  EXPECT_EQ(ce.cache().hits(), 1);
}

}  // namespace
}  // namespace magi
