// T5 encoder: golden vectors, config strictness, tied-embedding layouts, folder errors.
#include "worker/t5/t5_encoder.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "worker/model/checkpoint.h"
#include "worker/model/safetensors.h"
#include "worker/t5/t5_config.h"

namespace magi {
namespace {

namespace fs = std::filesystem;
const std::string kDir = MAGI_GOLDEN_DIR;

TEST(T5EncoderTest, MatchesGoldenVectors) {
  auto enc = T5Encoder::LoadFiles(kDir + "/t5_config.json", kDir + "/t5_weights.safetensors");
  ASSERT_TRUE(enc.ok()) << enc.status();
  auto f = SafetensorsFile::Open(kDir + "/t5_encode.safetensors");
  ASSERT_TRUE(f.ok());
  at::Tensor rel = *(*f)->Get("rel_bucket.relative_position");
  EXPECT_TRUE(at::equal(T5RelativePositionBucket(rel, true, 32, 128), *(*f)->Get("rel_bucket.bucket")));
  for (const std::string p : {"len16", "len800"}) {
    auto out = (*enc)->Encode(*(*f)->Get(p + ".input_ids"), *(*f)->Get(p + ".attention_mask"));
    ASSERT_TRUE(out.ok());
    const double diff = (*out - *(*f)->Get(p + ".last_hidden_state")).abs().max().item<double>();
    EXPECT_LE(diff, 1e-4) << p;
  }
}

TEST(T5EncoderTest, RejectsBadInputs) {
  auto enc = T5Encoder::LoadFiles(kDir + "/t5_config.json", kDir + "/t5_weights.safetensors");
  ASSERT_TRUE(enc.ok());
  at::Tensor ids = at::zeros({1, 4}, at::kLong), mask = at::ones({1, 4}, at::kLong);
  EXPECT_FALSE((*enc)->Encode(ids + 5000, mask).ok());
  EXPECT_FALSE((*enc)->Encode(ids, at::ones({1, 3}, at::kLong)).ok());
  EXPECT_FALSE((*enc)->Encode(ids, mask * 2).ok());
  EXPECT_FALSE((*enc)->Encode(ids.to(at::kFloat), mask).ok());
}

TEST(T5ConfigTest, StrictFields) {
  auto ok = ParseT5Config(R"({"d_model":8,"d_kv":2,"d_ff":16,"num_layers":1,"num_heads":4,"vocab_size":10,
                              "feed_forward_proj":"gated-gelu"})", "x");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->relative_attention_max_distance, 128);
  auto missing = ParseT5Config(R"({"d_model":8})", "cfg.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("vocab_size"), std::string::npos);
  auto relu = ParseT5Config(R"({"d_model":8,"d_kv":2,"d_ff":16,"num_layers":1,"num_heads":4,"vocab_size":10})", "c");
  ASSERT_FALSE(relu.ok());
  EXPECT_NE(std::string(relu.status().message()).find("feed_forward_proj"), std::string::npos);
  EXPECT_FALSE(ParseT5Config(R"({"d_model":-1,"d_kv":2,"d_ff":16,"num_layers":1,"num_heads":4,"vocab_size":10,
                                 "feed_forward_proj":"gated-gelu"})", "c").ok());
  EXPECT_FALSE(ParseT5Config("not json", "c").ok());
}

TEST(T5EncoderTest, AcceptsBothTiedEmbeddingKeysAndRejectsBinFolders) {
  auto src = SafetensorsFile::Open(kDir + "/t5_weights.safetensors");
  ASSERT_TRUE(src.ok());
  std::map<std::string, at::Tensor> w;
  for (const auto& k : (*src)->Keys()) w[k] = *(*src)->Get(k);
  w["encoder.embed_tokens.weight"] = w["shared.weight"];
  const fs::path dir = fs::temp_directory_path() / ("magi_t5_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(kDir + "/t5_config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  ASSERT_TRUE(WriteSafetensors((dir / "model.safetensors").string(), w).ok());
  auto both = T5Encoder::LoadFolder(dir.string());
  EXPECT_TRUE(both.ok()) << both.status();
  // Only the embed_tokens name.
  w.erase("shared.weight");
  ASSERT_TRUE(WriteSafetensors((dir / "model.safetensors").string(), w).ok());
  EXPECT_TRUE(T5Encoder::LoadFolder(dir.string()).ok());
  // A missing block tensor is named.
  w.erase("encoder.block.1.layer.1.DenseReluDense.wo.weight");
  ASSERT_TRUE(WriteSafetensors((dir / "model.safetensors").string(), w).ok());
  auto missing = T5Encoder::LoadFolder(dir.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("wo.weight"), std::string::npos);
  // .bin only.
  fs::remove(dir / "model.safetensors");
  std::ofstream(dir / "pytorch_model.bin") << "x";
  auto bin = T5Encoder::LoadFolder(dir.string());
  ASSERT_FALSE(bin.ok());
  EXPECT_NE(std::string(bin.status().message()).find("docs/t5.md"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace magi
