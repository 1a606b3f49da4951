// Device hygiene without a GPU: the DiT forward, the engine loop and the VAE decode run on a
// second device (tests/engine/host_backed_device.h) that follows CUDA's rules -- an op mixing
// its tensors with CPU tensors fails -- while computing with the CPU kernels. A tensor that the
// code creates on a fixed device (at::zeros(sizes), at::arange(n), at::tensor(v) without the
// input's device) and then combines with model tensors makes these tests fail here exactly
// where it would fail on a GPU. Results must also match the CPU run's: to float32 rounding
// (1e-4 of the largest value), not bit for bit, because some composite ops decompose
// differently for a backend that is not the CPU (as they do on CUDA).
//
// Checked to fail: adding `h = h + at::zeros(h.sizes(), h.scalar_type());` to the DiT's
// layer loop, `X = X + at::zeros(X.sizes());` after the engine's noise draw, or
// `x = x + at::zeros(x.sizes(), x.scalar_type());` in ViTVae::DecodeTile each made the
// matching test below fail with "Expected all tensors to be on the same device ...
// privateuseone:0 and cpu!" (tried one at a time, then reverted); so did the T5's position
// table built with at::arange(length) on the CPU (the code before this test).
#include <filesystem>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/engine/host_backed_device.h"
#include "worker/engine/ar_engine.h"
#include "worker/engine/denoiser.h"
#include "parallel/communicator.h"
#include "worker/model/checkpoint.h"
#include "worker/model/dit.h"
#include "worker/model/kv_cache.h"
#include "worker/model/random_checkpoint.h"
#include "worker/model/safetensors.h"
#include "worker/t5/t5_encoder.h"
#include "worker/vae/random_vae_checkpoint.h"
#include "worker/vae/vae_codec.h"
#include "worker/vae/vit_vae.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

std::string TempPath(const std::string& name) {
  return (fs::temp_directory_path() / ("magi_hygiene_" + std::to_string(::getpid()) + "_" + name)).string();
}

double MaxDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kFloat) - b.to(at::kCPU, at::kFloat)).abs().max().item<double>();
}

// Equal up to float32 rounding differences (see the file comment).
::testing::AssertionResult Close(const at::Tensor& got, const at::Tensor& want) {
  if (got.sizes() != want.sizes()) return ::testing::AssertionFailure() << "shapes differ";
  const double diff = MaxDiff(got, want), scale = want.abs().max().item<double>();
  if (diff <= 1e-4 * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |diff| " << diff << " over max |want| " << scale;
}

TEST(HostBackedDevice, FailsLikeCudaWhenAnOpMixesDevices) {
  const c10::Device dev = HostBackedDevice();
  at::Tensor cpu = at::randn({4, 3});
  at::Tensor x = cpu.to(dev);
  ASSERT_EQ(x.device(), dev);
  // Computation on the device gives the CPU's numbers and stays there.
  at::Tensor y = at::matmul(x, x.t()).softmax(-1);
  EXPECT_EQ(y.device(), dev);
  EXPECT_TRUE(at::equal(y.to(at::kCPU), at::matmul(cpu, cpu.t()).softmax(-1)));
  // Factories with the device's options, views and in-place writes stay on it.
  at::Tensor z = at::zeros({4, 3}, x.options());
  z.narrow(0, 1, 2).copy_(x.narrow(0, 0, 2));
  EXPECT_EQ(z.device(), dev);
  EXPECT_TRUE(at::equal(z.to(at::kCPU).narrow(0, 1, 2), cpu.narrow(0, 0, 2)));
  at::Tensor r = at::arange(5, at::TensorOptions().dtype(at::kLong).device(dev));
  EXPECT_EQ(r.device(), dev);
  EXPECT_EQ(r.sum().item<int64_t>(), 10);
  // A 0-dim CPU tensor is a scalar, as on CUDA.
  EXPECT_NO_THROW(x + at::scalar_tensor(1.0));
  // What a GPU rejects, this device rejects.
  EXPECT_THROW(x + at::zeros({4, 3}), c10::Error);
  EXPECT_THROW(at::cat({x, cpu}), c10::Error);
  EXPECT_THROW(x.index_select(0, at::arange(2)), c10::Error);
  EXPECT_THROW(at::matmul(x, cpu.t()), c10::Error);
}

class DeviceHygieneTest : public ::testing::Test {
 protected:
  static MagiConfig Config() {
    MagiConfig c = TinyMagiConfig();
    c.runtime.window_size = 2;
    c.runtime.num_steps = 8;
    return c;
  }
  void SetUp() override {
    config_ = Config();
    dit_path_ = TempPath("dit.safetensors");
    ASSERT_TRUE(WriteRandomDitCheckpoint(config_.model, dit_path_).ok());
  }
  void TearDown() override { fs::remove(dit_path_); }

  std::unique_ptr<DitModel> LoadDit(c10::Device device, const ModelConfig& m) {
    auto ckpt = Checkpoint::Open(dit_path_);
    EXPECT_TRUE(ckpt.ok()) << ckpt.status();
    checkpoints_.push_back(std::move(*ckpt));
    DitModel::Options o;
    o.device = device;
    o.distill = true;
    auto model = DitModel::Load(m, *checkpoints_.back(), o);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? std::move(*model) : nullptr;
  }

  ArRequest Request() {
    at::manual_seed(3);
    ArRequest r;
    EncodedChunkPrompt p;
    p.caption = at::randn({config_.model.caption_max_length, config_.model.caption_channels});
    p.mask = at::ones({config_.model.caption_max_length});
    p.mask.narrow(0, 11, 5).zero_();
    r.prompts.push_back(p);
    auto ckpt = Checkpoint::Open(dit_path_);
    r.null_caption = *LoadNullCaption(**ckpt, config_.model);
    return r;
  }

  MagiConfig config_;
  std::string dit_path_;
  std::vector<std::unique_ptr<Checkpoint>> checkpoints_;
};

TEST_F(DeviceHygieneTest, DitForwardWithKvCacheRunsOnTheModelsDevice) {
  const c10::Device dev = HostBackedDevice();
  const ModelConfig& m = config_.model;
  auto cpu_model = LoadDit(at::kCPU, m);
  auto dev_model = LoadDit(dev, m);
  ASSERT_TRUE(cpu_model && dev_model);
  // Two chunks at slice point 1 over one cached chunk: embedders, RoPE, caption packing, KV
  // read/write, attention, MLP and the output head.
  const int64_t h = 4, w = 6, M = (2 / m.t_patch_size) * (h / m.patch_size) * (w / m.patch_size);
  auto run = [&](const DitModel& model, c10::Device d) -> at::Tensor {
    at::manual_seed(11);
    DenseKvCache cache(m.num_layers, 4 * M, model.kv_cache_groups(), m.kv_channels,
                       at::TensorOptions().dtype(at::kFloat).device(d));
    EXPECT_TRUE(cache.Write(0, 0, at::zeros({M, model.kv_cache_groups(), 2 * m.kv_channels}, cache.buffer(0).options())).ok());
    for (int l = 1; l < m.num_layers; ++l) {
      EXPECT_TRUE(cache.Write(l, 0, at::randn({M, model.kv_cache_groups(), 2 * m.kv_channels}).to(d)).ok());
    }
    DitForwardArgs a;
    a.x = at::randn({1, m.latent_channels(), 4, h, w}).to(d);
    a.t = at::rand({1, 2}).to(d);
    a.y = at::randn({2, 1, m.caption_max_length, m.caption_channels}).to(d);
    a.xattn_mask = at::zeros({2, 1, m.caption_max_length}, at::TensorOptions().dtype(at::kLong).device(d));
    a.xattn_mask.narrow(2, 0, 7).fill_(1);
    a.caption_dropout_mask = at::zeros({1}, at::TensorOptions().dtype(at::kBool).device(d));
    a.kv_range = at::tensor({0, 2 * static_cast<int>(M), 0, 3 * static_cast<int>(M)}, at::kInt).view({2, 2}).to(d);
    a.denoising_range_num = 2;
    a.slice_point = 1;
    a.num_steps = 8;
    a.kv_cache = &cache;
    a.update_kv_cache = true;
    auto out = model.Forward(a);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return at::Tensor();
    EXPECT_EQ(out->device(), d);
    EXPECT_EQ(cache.buffer(1).device(), d);
    return *out;
  };
  at::Tensor want = run(*cpu_model, at::kCPU);
  at::Tensor got = run(*dev_model, dev);
  ASSERT_TRUE(want.defined() && got.defined());
  EXPECT_TRUE(Close(got, want));
}

TEST_F(DeviceHygieneTest, Bf16DitForwardRunsOnTheModelsDevice) {
  const c10::Device dev = HostBackedDevice();
  ModelConfig m = config_.model;
  m.params_dtype = ParamsDtype::kBFloat16;
  auto cpu_model = LoadDit(at::kCPU, m);
  auto dev_model = LoadDit(dev, m);
  ASSERT_TRUE(cpu_model && dev_model);
  auto run = [&](const DitModel& model, c10::Device d) -> at::Tensor {
    at::manual_seed(12);
    DitForwardArgs a;
    a.x = at::randn({1, m.latent_channels(), 4, 4, 6}).to(d);
    a.t = at::rand({1, 2}).to(d);
    a.y = at::randn({2, 1, m.caption_max_length, m.caption_channels}).to(d);
    a.xattn_mask = at::ones({2, 1, m.caption_max_length}, at::TensorOptions().dtype(at::kLong).device(d));
    a.caption_dropout_mask = at::ones({1}, at::TensorOptions().dtype(at::kBool).device(d));
    a.kv_range = at::tensor({0, 6, 0, 12}, at::kInt).view({2, 2}).to(d);
    a.denoising_range_num = 2;
    a.num_steps = 8;
    auto out = model.Forward(a);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : at::Tensor();
  };
  at::Tensor want = run(*cpu_model, at::kCPU);
  at::Tensor got = run(*dev_model, dev);
  ASSERT_TRUE(want.defined() && got.defined());
  EXPECT_EQ(got.device(), dev);
  // bf16 GEMMs take the device path (native bf16) instead of the CPU's float64 one.
  EXPECT_LT(MaxDiff(got, want), 5e-2 * want.abs().max().item<double>());
}

// A TP rank uploads only its shard: loading rank 0 of TP 2 onto the device allocates there
// about half of what TP 1 does (the sharded linears halve; norms, embedders, adaLN and the
// output head are replicated), and exactly the bytes the model says it keeps. Loading the
// whole tensor to the device and cutting it there (the code before this test) allocated the
// whole model's bytes at every TP rank.
TEST_F(DeviceHygieneTest, ATensorParallelRankUploadsOnlyItsShard) {
  const c10::Device dev = HostBackedDevice();
  std::unique_ptr<Communicator> comm = MakeSingleRankCommunicator("tp");
  struct Load {
    int64_t uploaded = 0, kept = 0;
  };
  auto load = [&](int tp) -> Load {
    auto ckpt = Checkpoint::Open(dit_path_);
    EXPECT_TRUE(ckpt.ok()) << ckpt.status();
    DitModel::Options o;
    o.device = dev;
    o.distill = true;
    o.layout.tp_size = tp;
    o.tp_comm = comm.get();
    const int64_t before = HostBackedBytesAllocated();
    auto model = DitModel::Load(config_.model, **ckpt, o);
    EXPECT_TRUE(model.ok()) << model.status();
    if (!model.ok()) return {};
    return {HostBackedBytesAllocated() - before, (*model)->weight_bytes()};
  };
  const Load whole = load(1), half = load(2);
  EXPECT_EQ(whole.uploaded, whole.kept);
  EXPECT_EQ(half.uploaded, half.kept);
  EXPECT_GT(half.uploaded, whole.uploaded / 4);
  EXPECT_LT(half.uploaded, whole.uploaded * 3 / 4);
}

TEST_F(DeviceHygieneTest, EngineLoopKeepsItsStateOnTheModelsDevice) {
  const c10::Device dev = HostBackedDevice();
  auto cpu_model = LoadDit(at::kCPU, config_.model);
  auto dev_model = LoadDit(dev, config_.model);
  ASSERT_TRUE(cpu_model && dev_model);
  for (KvCacheMode mode : {KvCacheMode::kWindowed, KvCacheMode::kDense}) {
    for (bool i2v : {false, true}) {
      auto generate = [&](const DitModel& model) -> at::Tensor {
        DitDenoiser denoiser(model);
        auto engine = ArEngine::Create(config_, denoiser, {mode, true, 0.7});
        EXPECT_TRUE(engine.ok()) << engine.status();
        ArRequest req = Request();
        req.num_frames = 3 * 2 * 4;
        if (i2v) req.prefix = at::randn({1, config_.model.latent_channels(), 1, 4, 6});
        auto r = (*engine)->Generate(req);
        EXPECT_TRUE(r.ok()) << r.status();
        return r.ok() ? r->final_latents : at::Tensor();
      };
      at::Tensor want = generate(*cpu_model);
      at::Tensor got = generate(*dev_model);
      ASSERT_TRUE(want.defined() && got.defined());
      EXPECT_TRUE(Close(got, want)) << "kv cache mode " << static_cast<int>(mode) << ", i2v " << i2v;
    }
  }
}

// golden A's ddconfig (tests/vae/vae_codec_test.cc): 2 blocks, 8x spatial, 4x temporal.
constexpr char kTinyVae[] = R"({"video_size": 32, "video_length": 8, "patch_size": 8, "patch_length": 4,
  "in_chans": 3, "z_chans": 16, "double_z": true, "embed_dim": 256, "depth": 2, "num_heads": 4,
  "mlp_ratio": 1.0, "qkv_bias": true, "with_cls_token": true, "norm_code": false, "ln_in_attn": true,
  "conv_last_layer": true, "use_rope": false, "use_final_proj": false})";

TEST(DeviceHygieneVae, DecodeAndPrefixEncodeRunOnTheVaesDevice) {
  const c10::Device dev = HostBackedDevice();
  auto config = ParseVaeDdconfig(kTinyVae, "test");
  ASSERT_TRUE(config.ok()) << config.status();
  const std::string path = TempPath("vae.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, RandomVaeWeights(*config)).ok());
  VaeTileOptions tiles = VaeTileOptions::ForPipeline(24);
  tiles.tile_sample_min_height = tiles.tile_sample_min_width = 32;
  for (VaeCompute compute : {VaeCompute::kFloat32, VaeCompute::kBFloat16}) {
    struct Out {
      at::Tensor frames, prefix;
    };
    auto run = [&](c10::Device d) -> Out {
      auto ckpt = Checkpoint::Open(path);
      ViTVae::Options o;
      o.device = d;
      o.compute = compute;
      auto vae = ViTVae::Load(*config, **ckpt, o);
      EXPECT_TRUE(vae.ok()) << vae.status();
      if (!vae.ok()) return {};
      VaeCodec codec(vae->get(), tiles, tiles, 0.18215);
      at::manual_seed(21);
      ChunkLayout layout;
      layout.chunk_width = 2;
      // Two chunks' worth of latent (decode tiles overlap spatially: 6 x 10 latent pixels).
      auto decoded = codec.DecodeChunk(at::randn({1, 16, 2, 6, 10}), 1, layout);
      EXPECT_TRUE(decoded.ok()) << decoded.status();
      at::Tensor video = at::randint(0, 256, {1, 3, 8, 48, 80}, at::TensorOptions().dtype(at::kByte));
      auto prefix = codec.EncodePrefix(video);
      EXPECT_TRUE(prefix.ok()) << prefix.status();
      if (!decoded.ok() || !prefix.ok()) return {};
      EXPECT_TRUE(decoded->frames.device().is_cpu());
      EXPECT_EQ(prefix->device(), d);
      return {decoded->frames, prefix->to(at::kCPU)};
    };
    Out want = run(at::kCPU), got = run(dev);
    ASSERT_TRUE(want.frames.defined() && got.frames.defined());
    if (compute == VaeCompute::kFloat32) {
      EXPECT_LE(MaxDiff(got.frames, want.frames), 1.0);  // uint8: a rounding step at most
      EXPECT_TRUE(Close(got.prefix, want.prefix));
    } else {
      // uint8 frames after bf16 GEMMs on the device path: a few levels off at most.
      EXPECT_LE(MaxDiff(got.frames, want.frames), 8.0);
      EXPECT_LT(MaxDiff(got.prefix, want.prefix), 5e-2 * want.prefix.abs().max().item<double>());
    }
  }
  fs::remove(path);
}

// The T5 on runtime_config.t5_device: golden A's small T5 on the device, padded input.
TEST(DeviceHygieneT5, EncodeRunsOnTheEncodersDevice) {
  const std::string dir = MAGI_GOLDEN_DIR;
  const c10::Device dev = HostBackedDevice();
  auto cpu = T5Encoder::LoadFiles(dir + "/t5_config.json", dir + "/t5_weights.safetensors");
  auto on_dev = T5Encoder::LoadFiles(dir + "/t5_config.json", dir + "/t5_weights.safetensors", dev);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  ASSERT_TRUE(on_dev.ok()) << on_dev.status();
  EXPECT_EQ((*on_dev)->device(), dev);
  const int64_t L = 12;
  at::Tensor ids = at::randint(1, (*cpu)->config().vocab_size, {2, L}, at::TensorOptions().dtype(at::kLong));
  at::Tensor mask = at::ones({2, L}, at::TensorOptions().dtype(at::kLong));
  mask[1].narrow(0, 7, L - 7).zero_();
  auto want = (*cpu)->Encode(ids, mask);
  auto got = (*on_dev)->Encode(ids, mask);  // CPU inputs: the encoder moves them
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->device(), dev);
  EXPECT_TRUE(Close(*got, *want));
}

}  // namespace
}  // namespace magi
