// Special tokens (npz + fp16 rounding), caption rows, embedding cache, caption encoder.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "worker/t5/caption_encoder.h"
#include "worker/t5/embedding_cache.h"
#include "worker/t5/special_tokens.h"
#include "worker/t5/t5_encoder.h"
#include "worker/t5/t5_tokenizer.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

// A stored-ZIP .npz writer for float64 arrays (what np.savez produces).
void WriteNpz(const std::string& path, const std::map<std::string, at::Tensor>& arrays) {
  std::string zip;
  auto le = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) zip.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  for (const auto& [name, t] : arrays) {
    at::Tensor d = t.to(at::kDouble).contiguous();
    std::string shape = "(";
    for (auto s : d.sizes()) shape += std::to_string(s) + ", ";
    shape += ")";
    std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
    while ((10 + header.size() + 1) % 64) header += ' ';
    header += '\n';
    std::string npy = "\x93NUMPY\x01";
    npy.push_back(0);
    npy.push_back(static_cast<char>(header.size() & 0xff));
    npy.push_back(static_cast<char>(header.size() >> 8));
    npy += header;
    npy.append(reinterpret_cast<const char*>(d.data_ptr()), d.nbytes());
    const std::string fname = name + ".npy";
    le(0x04034b50, 4); le(20, 2); le(0, 2); le(0, 2); le(0, 2); le(0, 2); le(0, 4);
    le(npy.size(), 4); le(npy.size(), 4); le(fname.size(), 2); le(0, 2);
    zip += fname + npy;
  }
  std::ofstream(path, std::ios::binary) << zip;
}

TEST(SpecialTokensTest, NpzRoundsThroughFloat16) {
  at::manual_seed(1);
  at::Tensor cap = at::randn({1, 8}, at::kDouble) * 0.125, logo = at::randn({1, 8}, at::kDouble),
             other = at::randn({100, 8}, at::kDouble);
  const std::string path = (fs::temp_directory_path() / ("magi_tokens_" + std::to_string(::getpid()) + ".npz")).string();
  WriteNpz(path, {{"caption_token", cap}, {"logo_token", logo}, {"other_tokens", other}});
  auto t = SpecialTokens::Load(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(at::equal((*t)->caption(), cap.to(at::kFloat).to(at::kHalf).to(at::kFloat)) ||
              ((*t)->caption() - cap.to(at::kFloat)).abs().max().item<double>() < 1e-3);
  EXPECT_EQ((*t)->other(16).sizes(), (std::vector<int64_t>{1, 8}));
  WriteNpz(path, {{"caption_token", cap}, {"logo_token", logo}});
  auto missing = SpecialTokens::Load(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("other_tokens"), std::string::npos);
  fs::remove(path);
  EXPECT_FALSE(SpecialTokens::Load(path).ok());
}

TEST(CaptionRowsTest, HqDurationOrderAndNullRows) {
  const int64_t L = 6, C = 3;
  at::Tensor other = at::arange(100 * C, at::kDouble).view({100, C}) / 1024.0;  // exact in fp16
  auto tok = SpecialTokens::FromTensors(at::full({1, C}, 0.5, at::kDouble), at::full({1, C}, 0.25, at::kDouble), other);
  ASSERT_TRUE(tok.ok());
  at::Tensor cap = at::arange(L * C, at::kFloat).view({1, L, C}) + 100;
  at::Tensor mask = at::tensor(std::vector<int64_t>{1, 1, 1, 0, 0, 0}).view({1, L});
  at::Tensor null = -at::ones({L, C});
  CaptionRowOptions o;
  o.hq = true;
  o.duration = true;
  auto rows = BuildCaptionRows({cap}, {mask}, null, /*chunk_num=*/4, /*chunk_offset=*/1, tok->get(), o);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->y.sizes(), (std::vector<int64_t>{2, 4, L, C}));
  // Prefix chunk: null row, zero mask.
  EXPECT_TRUE(at::equal(rows->y[0][0], null));
  EXPECT_EQ(rows->mask[0][0].sum().item<float>(), 0);
  // Denoised chunk i (3 of them): [DURATION_{min(2-i,7)+1}, HQ, caption[0..L-3]].
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(at::equal(rows->y[0][1 + i][0], (*tok)->other(7 + (2 - i))[0])) << i;
    EXPECT_TRUE(at::equal(rows->y[0][1 + i][1], (*tok)->other(1)[0]));
    EXPECT_TRUE(at::equal(rows->y[0][1 + i][2], cap[0][0]));
    EXPECT_EQ(rows->mask[0][1 + i].sum().item<float>(), 5);
  }
  // Null rows: first min(50, L) mask entries set.
  EXPECT_EQ(rows->mask[1].sum().item<float>(), 4 * L);
  // Chunk-wise prompts: one caption per denoised chunk.
  auto per_chunk = BuildCaptionRows({cap, cap * 2, cap * 3}, {mask, mask, mask}, null, 4, 1, nullptr, {});
  ASSERT_TRUE(per_chunk.ok());
  EXPECT_TRUE(at::equal(per_chunk->y[0][3], cap[0] * 3));
  EXPECT_FALSE(BuildCaptionRows({cap, cap}, {mask, mask}, null, 4, 1, nullptr, {}).ok());
  EXPECT_FALSE(BuildCaptionRows({cap}, {mask}, null, 4, 1, nullptr, o).ok());  // tokens needed
}

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
