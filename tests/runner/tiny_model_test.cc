// The embedded "tiny" model set: deterministic generation, reuse, and loading only through
// the real loaders.
#include "worker/runner/tiny_model.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jobspec/builtin_models.h"
#include "server/model_catalog.h"
#include "worker/model/config.h"
#include "worker/runner/model_job_runner.h"
#include "worker/t5/t5_tokenizer.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path TempDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("magi_tiny_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  return d;
}

const char* kFiles[] = {"config.json",     "dit/model.safetensors", "t5/config.json",
                        "t5/model.safetensors", "t5/spiece.model",   "vae/config.json",
                        "vae/diffusion_pytorch_model.safetensors", "special_tokens.npz", "tiny_model.json"};

TEST(TinyModel, GenerationIsDeterministicAndReused) {
  const fs::path a = TempDir("a"), b = TempDir("b");
  // A half-written set of a generator that died (no such pid) is cleaned up, never used.
  const fs::path stale = a.parent_path() / ".a.tmp-999999999";
  fs::create_directories(stale / "dit");
  ASSERT_TRUE(WriteTinyModelSet(a.string()).ok());
  ASSERT_TRUE(WriteTinyModelSet(b.string()).ok());
  for (const char* f : kFiles) {
    ASSERT_TRUE(fs::exists(a / f)) << f;
    EXPECT_EQ(Read(a / f), Read(b / f)) << f << " differs between two generations with the same seed";
  }
  // No temp folders left next to the set.
  for (const auto& e : fs::directory_iterator(a.parent_path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
  EXPECT_FALSE(fs::exists(stale));
  // Complete set: reused as is (the file is not rewritten).
  const auto mtime = fs::last_write_time(a / "dit/model.safetensors");
  ASSERT_TRUE(WriteTinyModelSet(a.string()).ok());
  EXPECT_EQ(fs::last_write_time(a / "dit/model.safetensors"), mtime);
  EXPECT_TRUE(TinyModelSetComplete(a.string()));
  // Another seed: other weights, and an existing incomplete folder is refused, not mixed.
  const fs::path c = TempDir("c");
  ASSERT_TRUE(WriteTinyModelSet(c.string(), kTinyModelSeed + 1).ok());
  EXPECT_NE(Read(a / "dit/model.safetensors"), Read(c / "dit/model.safetensors"));
  auto s = WriteTinyModelSet(c.string());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not a complete tiny model set"), std::string::npos) << s;
  fs::remove_all(a.parent_path());
}

// A format-1 set (before special_tokens.npz) with the same seed is ours: it is replaced.
TEST(TinyModel, OlderFormatSetIsUpgraded) {
  const fs::path d = TempDir("upgrade");
  ASSERT_TRUE(WriteTinyModelSet(d.string()).ok());
  fs::remove(d / "special_tokens.npz");
  {
    std::ifstream in(d / "tiny_model.json");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string m = ss.str();
    const std::string now = "\"format\": " + std::to_string(kTinyModelFormat);
    ASSERT_NE(m.find(now), std::string::npos) << m;
    m.replace(m.find(now), now.size(), "\"format\": 1");
    std::ofstream(d / "tiny_model.json") << m;
  }
  EXPECT_FALSE(TinyModelSetComplete(d.string()));
  ASSERT_TRUE(WriteTinyModelSet(d.string()).ok());
  EXPECT_TRUE(TinyModelSetComplete(d.string()));
  EXPECT_TRUE(fs::exists(d / "special_tokens.npz"));
  fs::remove_all(d.parent_path());
}

// A set written by an earlier release whose manifest note named another source path (the
// generator moved from worker/main to worker/runner) is the same set: reused, not refused.
TEST(TinyModel, ManifestNoteWordingDoesNotMatter) {
  const fs::path d = TempDir("note");
  ASSERT_TRUE(WriteTinyModelSet(d.string()).ok());
  {
    std::ifstream in(d / "tiny_model.json");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string m = ss.str();
    const std::string now = "worker/runner/tiny_model.h";
    ASSERT_NE(m.find(now), std::string::npos) << m;
    m.replace(m.find(now), now.size(), "worker/main/tiny_model.h");
    std::ofstream(d / "tiny_model.json") << m;
  }
  EXPECT_TRUE(TinyModelSetComplete(d.string()));
  EXPECT_TRUE(WriteTinyModelSet(d.string()).ok());
  fs::remove_all(d.parent_path());
}

TEST(TinyModel, LoadsThroughTheRealLoadersConsistently) {
  const fs::path d = TempDir("load");
  ASSERT_TRUE(WriteTinyModelSet(d.string()).ok());
  auto config = LoadMagiConfig((d / "config.json").string());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->runtime.load, "dit");
  auto tok = T5Tokenizer::Load((d / "t5/spiece.model").string());
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto ids = (*tok)->Encode("a red fox running through the snow", 32);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->input_ids.size(), 32u);
  EXPECT_GT(ids->valid(), 3);
  EXPECT_EQ(ids->input_ids[ids->valid() - 1], 1);  // </s>
  EXPECT_EQ(ids->input_ids.back(), 0);              // <pad>
  auto runner = ModelJobRunner::Load(d.string());
  ASSERT_TRUE(runner.ok()) << runner.status();
  auto models = (*runner)->Models();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name(), "tiny");
  EXPECT_EQ(models[0].frames_per_chunk(), 24);
  // The server's built-in entry (used before a worker registers) is what the runner serves.
  EXPECT_EQ(models[0].SerializeAsString(), TinyModelInfo().SerializeAsString())
      << models[0].DebugString() << " vs " << TinyModelInfo().DebugString();
  // A broken set fails with the file named.
  fs::remove(d / "vae/diffusion_pytorch_model.safetensors");
  auto broken = ModelJobRunner::Load(d.string());
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("vae"), std::string::npos) << broken.status();
  fs::remove_all(d.parent_path());
}

}  // namespace
}  // namespace magi
