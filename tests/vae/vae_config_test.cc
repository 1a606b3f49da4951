#include "worker/vae/vae_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace magi {
namespace {

// golden A's ddconfig (tiny sizes, released structure flags).
constexpr char kTiny[] = R"({"video_size": 32, "video_length": 8, "patch_size": 8, "patch_length": 4,
  "in_chans": 3, "z_chans": 16, "double_z": true, "embed_dim": 256, "depth": 2, "num_heads": 4,
  "mlp_ratio": 1.0, "qkv_bias": true, "with_cls_token": true, "norm_code": false, "ln_in_attn": true,
  "conv_last_layer": true, "use_rope": false, "use_final_proj": false})";

std::string WithField(const std::string& field, const std::string& value) {
  std::string s = kTiny;
  const std::string key = "\"" + field + "\": ";
  size_t at = s.find(key);
  if (at == std::string::npos) return s.substr(0, s.size() - 1) + ", " + key + value + "}";
  size_t end = s.find_first_of(",}", at);
  return s.substr(0, at + key.size()) + value + s.substr(end);
}

TEST(VaeConfigTest, ParsesTheGoldenConfig) {
  auto c = ParseVaeDdconfig(kTiny, "test");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->latent_size(), 4);
  EXPECT_EQ(c->latent_length(), 2);
  EXPECT_EQ(c->num_patches(), 32);
  EXPECT_EQ(c->head_dim(), 64);
  EXPECT_EQ(c->mlp_hidden(), 256);
  EXPECT_EQ(c->encoder_out_channels(), 32);
  EXPECT_EQ(c->unpatch_channels(), 1);
}

TEST(VaeConfigTest, ReleasedSizesGiveTheSpecShapes) {
  auto c = ParseVaeDdconfig(R"({"video_size": 256, "video_length": 16, "patch_size": 8, "patch_length": 4,
    "in_chans": 3, "z_chans": 16, "double_z": true, "embed_dim": 1024, "depth": 24, "num_heads": 16,
    "mlp_ratio": 4.0, "qkv_bias": true, "with_cls_token": true, "norm_code": false, "ln_in_attn": true,
    "conv_last_layer": true, "use_rope": false, "use_final_proj": false})",
                            "released");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_patches() + 1, 4097);  // pos_embed rows
  EXPECT_EQ(c->mlp_hidden(), 4096);
  EXPECT_EQ(c->unpatch_channels(), 4);
  EXPECT_EQ(c->head_dim(), 64);
}

TEST(VaeConfigTest, MissingKeysTakeTheConstructorDefaults) {
  // Without conv_last_layer the reference decoder asserts; everything else defaults.
  auto c = ParseVaeDdconfig(R"({"conv_last_layer": true, "embed_dim": 256, "num_heads": 4})", "test");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->video_size, 256);
  EXPECT_EQ(c->video_length, 16);
  EXPECT_EQ(c->z_chans, 4);
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_FALSE(c->ln_in_attn);
  auto bad = ParseVaeDdconfig("{}", "test");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("conv_last_layer"), std::string::npos) << bad.status();
}

TEST(VaeConfigTest, ErrorsNameTheField) {
  struct Case {
    std::string field, value, expect;
  } cases[] = {
      {"embed_dim", "200", "embed_dim"},  // not a multiple of 8*8*4
      {"num_heads", "3", "num_heads"},    // does not divide 256
      {"patch_size", "0", "patch_size"},  // out of range
      {"depth", "\"two\"", "depth"},      // wrong type
      {"qkv_bias", "1", "qkv_bias"},      // not a bool
      {"use_rope", "true", "use_rope"},   // unsupported
      {"use_final_proj", "true", "use_final_proj"},
      {"double_z", "false", "double_z"},
      {"video_size", "36", "video_size"},  // not a multiple of patch_size
      {"mlp_ratio", "-1", "mlp_ratio"},
      {"bogus_key", "1", "bogus_key"},  // not a constructor argument
  };
  for (const Case& c : cases) {
    auto r = ParseVaeDdconfig(WithField(c.field, c.value), "cfg.json");
    ASSERT_FALSE(r.ok()) << c.field << "=" << c.value;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find("cfg.json"), std::string::npos) << r.status();
  }
  EXPECT_FALSE(ParseVaeDdconfig("not json", "x").ok());
  EXPECT_FALSE(ParseVaeDdconfig("[1, 2]", "x").ok());
}

TEST(VaeConfigTest, LoadsADiffusersConfigFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("vae_config_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "config.json").string();
  auto write = [&](const std::string& text) { std::ofstream(path) << text; };

  write(std::string(R"({"_class_name": "ViTVAE", "_diffusers_version": "0.27.0", "model_type": "vit", "ddconfig": )") +
        kTiny + "}");
  auto c = LoadVaeConfigFile(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->embed_dim, 256);

  write(std::string(R"({"_class_name": "AutoencoderKL", "ddconfig": )") + kTiny + "}");
  c = LoadVaeConfigFile(path);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("_class_name"), std::string::npos);

  write(std::string(R"({"_class_name": "ViTVAE", "model_type": "vit_ncthw", "ddconfig": )") + kTiny + "}");
  c = LoadVaeConfigFile(path);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("model_type"), std::string::npos);

  write(R"({"_class_name": "ViTVAE"})");
  c = LoadVaeConfigFile(path);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("ddconfig"), std::string::npos);

  write(std::string(R"({"_class_name": "ViTVAE", "ddconfig": )") + WithField("depth", "-1") + "}");
  c = LoadVaeConfigFile(path);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("ddconfig.depth"), std::string::npos) << c.status();

  EXPECT_EQ(LoadVaeConfigFile((dir / "missing.json").string()).status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace magi
