#include "worker/vae/vit_vae.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "worker/model/checkpoint.h"
#include "worker/model/safetensors.h"
#include "worker/vae/random_vae_checkpoint.h"
#include "worker/vae/vae_codec.h"

namespace magi {
namespace {

namespace fs = std::filesystem;
const std::string kGolden = MAGI_GOLDEN_DIR;

nlohmann::json GoldenVaeJson() {
  std::ifstream in(kGolden + "/golden_vae.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

VaeConfig GoldenConfig() {
  auto c = ParseVaeDdconfig(GoldenVaeJson()["ddconfig"].dump(), "golden_vae.json");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

std::unique_ptr<ViTVae> LoadGolden(VaeCompute compute, int64_t attention_budget = int64_t{256} << 20) {
  auto ckpt = Checkpoint::Open(kGolden + "/vae_weights.safetensors");
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  ViTVae::Options o;
  o.compute = compute;
  o.attention_bytes_budget = attention_budget;
  auto vae = ViTVae::Load(GoldenConfig(), **ckpt, o);
  EXPECT_TRUE(vae.ok()) << vae.status();
  return vae.ok() ? std::move(*vae) : nullptr;
}

at::Tensor GoldenTensor(const std::string& file, const std::string& key) {
  auto f = SafetensorsFile::Open(kGolden + "/" + file);
  EXPECT_TRUE(f.ok());
  auto t = (*f)->Get(key);
  EXPECT_TRUE(t.ok()) << key;
  return t->clone();
}

double RelDiff(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.to(at::kDouble), y = b.to(at::kDouble);
  return (x - y).abs().max().item<double>() / y.abs().max().item<double>();
}

// The golden's decoder tile 00 is latent[:, :, 0:3, 0:4, 0:4] / scale_factor.
at::Tensor Tile00Input() {
  return (GoldenTensor("vae_decode.safetensors", "in.latent") / 0.18215).slice(2, 0, 3).slice(3, 0, 4).slice(4, 0, 4);
}

TEST(ViTVaeTest, DecodesAGoldenTileInFloat32) {
  auto vae = LoadGolden(VaeCompute::kFloat32);
  ASSERT_NE(vae, nullptr);
  auto out = vae->DecodeTile(Tile00Input());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->scalar_type(), at::kFloat);
  EXPECT_LT(RelDiff(*out, GoldenTensor("vae_decode.safetensors", "f32.dec_tile00.out")), 1e-5);
}

TEST(ViTVaeTest, SmallAttentionBudgetGivesTheSameResult) {
  // 1 KiB forces one head and a few query rows per block.
  auto small = LoadGolden(VaeCompute::kFloat32, 1024);
  auto big = LoadGolden(VaeCompute::kFloat32);
  auto a = small->DecodeTile(Tile00Input());
  auto b = big->DecodeTile(Tile00Input());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(RelDiff(*a, *b), 1e-6);
}

TEST(ViTVaeTest, Bf16ModeFollowsTheReferenceDtypes) {
  auto vae = LoadGolden(VaeCompute::kBFloat16);
  ASSERT_NE(vae, nullptr);
  EXPECT_EQ(vae->compute_dtype(), at::kBFloat16);
  auto dec = vae->DecodeTile(Tile00Input());  // float32 in, as the pipeline passes it
  ASSERT_TRUE(dec.ok()) << dec.status();
  EXPECT_EQ(dec->scalar_type(), at::kBFloat16);
  // bf16 vs the float32 reference tile: about 1% of the range (golden README).
  EXPECT_LT(RelDiff(*dec, GoldenTensor("vae_decode.safetensors", "f32.dec_tile00.out")), 3e-2);
  auto enc = vae->EncodeTile(at::zeros({1, 3, 4, 16, 16}));
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ(enc->scalar_type(), at::kBFloat16);
}

TEST(ViTVaeTest, LoadRejectsAnInconsistentConfigBuiltInCode) {
  auto ckpt = Checkpoint::Open(kGolden + "/vae_weights.safetensors");
  ASSERT_TRUE(ckpt.ok());
  VaeConfig c = GoldenConfig();
  c.num_heads = 3;  // does not divide embed_dim 256
  auto vae = ViTVae::Load(c, **ckpt, ViTVae::Options());
  ASSERT_FALSE(vae.ok());
  EXPECT_NE(vae.status().message().find("num_heads"), std::string::npos) << vae.status();
}

TEST(ViTVaeTest, SingleFrameRules) {
  auto vae = LoadGolden(VaeCompute::kFloat32);
  // Encoding one frame = encoding it repeated 4 times, first latent frame kept.
  at::Tensor frame = at::rand({1, 3, 1, 16, 24}) * 2 - 1;
  auto one = vae->EncodeTile(frame);
  auto four = vae->EncodeTile(frame.expand({-1, -1, 4, -1, -1}).contiguous());
  ASSERT_TRUE(one.ok() && four.ok());
  EXPECT_EQ(one->sizes(), (std::vector<int64_t>{1, 16, 1, 2, 3}));
  EXPECT_TRUE(at::allclose(*one, *four, 1e-5, 1e-6));
  // Decoding one latent frame gives one video frame; three give twelve.
  auto d1 = vae->DecodeTile(at::randn({1, 16, 1, 2, 3}));
  auto d3 = vae->DecodeTile(at::randn({1, 16, 3, 2, 3}));
  ASSERT_TRUE(d1.ok() && d3.ok());
  EXPECT_EQ(d1->sizes(), (std::vector<int64_t>{1, 3, 1, 16, 24}));
  EXPECT_EQ(d3->sizes(), (std::vector<int64_t>{1, 3, 12, 16, 24}));
}

TEST(ViTVaeTest, BadInputsAreInvalidArgument) {
  auto vae = LoadGolden(VaeCompute::kFloat32);
  EXPECT_EQ(vae->EncodeTile(at::zeros({1, 4, 4, 16, 16})).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(vae->EncodeTile(at::zeros({1, 3, 2, 16, 16})).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(vae->EncodeTile(at::zeros({1, 3, 4, 4, 16})).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(vae->EncodeTile(at::zeros({3, 4, 16, 16})).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(vae->EncodeTile(at::zeros({1, 3, 4, 16, 16}, at::kInt)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(vae->EncodeTile(at::Tensor()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(vae->DecodeTile(at::zeros({1, 4, 1, 2, 2})).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(vae->DecodeTile(at::zeros({1, 16, 0, 2, 2})).status().code(), absl::StatusCode::kInvalidArgument);
  auto msg = vae->DecodeTile(at::zeros({1, 4, 1, 2, 2})).status().message();
  EXPECT_NE(msg.find("[1, 4, 1, 2, 2]"), std::string::npos) << msg;
}

class ViTVaeFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vit_vae_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    auto f = SafetensorsFile::Open(kGolden + "/vae_weights.safetensors");
    ASSERT_TRUE(f.ok());
    for (const std::string& k : (*f)->Keys()) weights_[k] = (*(*f)->Get(k)).clone();
    nlohmann::json cfg = {{"_class_name", "ViTVAE"}, {"model_type", "vit"}, {"ddconfig", GoldenVaeJson()["ddconfig"]}};
    std::ofstream(dir_ / "config.json") << cfg.dump();
  }
  void TearDown() override { fs::remove_all(dir_); }
  absl::Status Write(const std::map<std::string, at::Tensor>& w) {
    return WriteSafetensors((dir_ / "diffusion_pytorch_model.safetensors").string(), w);
  }
  fs::path dir_;
  std::map<std::string, at::Tensor> weights_;
};

TEST_F(ViTVaeFolderTest, LoadsTheReleasedLayoutWithBf16Weights) {
  // Released weights may be stored in bf16; the float32 mode then computes with them widened.
  std::map<std::string, at::Tensor> bf16;
  for (auto& [k, v] : weights_) bf16[k] = v.to(at::kBFloat16);
  ASSERT_TRUE(Write(bf16).ok());
  ViTVae::Options o;
  o.compute = VaeCompute::kFloat32;
  auto vae = ViTVae::LoadFolder(dir_.string(), o);
  ASSERT_TRUE(vae.ok()) << vae.status();
  EXPECT_EQ((*vae)->weight_bytes(), 1809012 * 4);
  auto out = (*vae)->DecodeTile(Tile00Input());
  ASSERT_TRUE(out.ok());
  EXPECT_LT(RelDiff(*out, GoldenTensor("vae_decode.safetensors", "f32.dec_tile00.out")), 3e-2);
}

TEST_F(ViTVaeFolderTest, MissingExtraOrMisshapedKeysNameTheKey) {
  auto w = weights_;
  w.erase("decoder.blocks.1.mlp.fc2.bias");
  ASSERT_TRUE(Write(w).ok());
  auto vae = ViTVae::LoadFolder(dir_.string(), ViTVae::Options());
  ASSERT_FALSE(vae.ok());
  EXPECT_NE(vae.status().message().find("decoder.blocks.1.mlp.fc2.bias"), std::string::npos) << vae.status();

  w = weights_;
  w["decoder.blocks.0.norm1.weight"] = at::ones({256});  // ln_in_attn: norm1 is Identity
  ASSERT_TRUE(Write(w).ok());
  vae = ViTVae::LoadFolder(dir_.string(), ViTVae::Options());
  ASSERT_FALSE(vae.ok());
  EXPECT_NE(vae.status().message().find("decoder.blocks.0.norm1.weight"), std::string::npos) << vae.status();

  w = weights_;
  w["encoder.pos_embed"] = at::zeros({1, 17, 256});
  ASSERT_TRUE(Write(w).ok());
  vae = ViTVae::LoadFolder(dir_.string(), ViTVae::Options());
  ASSERT_FALSE(vae.ok());
  EXPECT_NE(vae.status().message().find("encoder.pos_embed"), std::string::npos) << vae.status();

  EXPECT_FALSE(ViTVae::LoadFolder((dir_ / "nope").string(), ViTVae::Options()).ok());
}

TEST_F(ViTVaeFolderTest, RandomFolderRoundTrips) {
  VaeConfig c = GoldenConfig();
  c.depth = 1;
  c.ln_in_attn = false;  // exercises norm1 and the plain pre-norm block
  c.qkv_bias = false;
  ASSERT_TRUE(WriteRandomVaeFolder(c, (dir_ / "random").string(), 7).ok());
  auto back = LoadVaeConfigFile((dir_ / "random" / "config.json").string());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(VaeDdconfigJson(*back), VaeDdconfigJson(c));
  for (VaeCompute compute : {VaeCompute::kFloat32, VaeCompute::kBFloat16}) {
    ViTVae::Options o;
    o.compute = compute;
    auto vae = ViTVae::LoadFolder((dir_ / "random").string(), o);
    ASSERT_TRUE(vae.ok()) << vae.status();
    auto z = (*vae)->EncodeTile(at::rand({1, 3, 8, 40, 24}) * 2 - 1);
    ASSERT_TRUE(z.ok()) << z.status();
    EXPECT_EQ(z->sizes(), (std::vector<int64_t>{1, 16, 2, 5, 3}));
    auto x = (*vae)->DecodeTile(*z);
    ASSERT_TRUE(x.ok()) << x.status();
    EXPECT_EQ(x->sizes(), (std::vector<int64_t>{1, 3, 8, 40, 24}));
    // Random weights keep activations O(1).
    const double m = x->abs().max().item<double>();
    EXPECT_TRUE(std::isfinite(m) && m > 1e-3 && m < 1e3) << m;
  }
}

}  // namespace
}  // namespace magi
