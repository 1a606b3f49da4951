#include "worker/model/checkpoint.h"

#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace magi {
namespace {

namespace fs = std::filesystem;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("magi_ckpt_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void WriteIndex(const std::string& body) {
    std::ofstream(dir_ / "model.safetensors.index.json") << body;
  }
  fs::path dir_;
};

TEST_F(CheckpointTest, ReadsShardsThroughTheIndex) {
  ASSERT_TRUE(WriteSafetensors((dir_ / "a.safetensors").string(), {{"x", at::ones({2})}}).ok());
  ASSERT_TRUE(WriteSafetensors((dir_ / "b.safetensors").string(), {{"y", at::zeros({3})}}).ok());
  WriteIndex(R"({"metadata":{},"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})");
  auto c = Checkpoint::Open(dir_.string());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->Keys().size(), 2u);
  EXPECT_NE((*c)->FileOf("y").find("b.safetensors"), std::string::npos);
  auto y = (*c)->Take("y", {3}, {StDtype::kF32});
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(y->sum().item<float>(), 0.0f);
  // x was never taken: strict loading reports it by name.
  auto unused = (*c)->CheckAllUsed();
  ASSERT_FALSE(unused.ok());
  EXPECT_NE(std::string(unused.message()).find("'x'"), std::string::npos);
  ASSERT_TRUE((*c)->Take("x").ok());
  EXPECT_TRUE((*c)->CheckAllUsed().ok());
}

TEST_F(CheckpointTest, ErrorsNameTheFileAndTheKey) {
  const std::string file = (dir_ / "model.safetensors").string();
  ASSERT_TRUE(WriteSafetensors(file, {{"w", at::ones({2, 3})}}).ok());
  auto c = Checkpoint::Open(dir_.string());
  ASSERT_TRUE(c.ok());
  auto missing = (*c)->Take("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.status().message()).find("'nope'"), std::string::npos);
  auto shape = (*c)->Take("w", {3, 2});
  ASSERT_FALSE(shape.ok());
  EXPECT_NE(std::string(shape.status().message()).find(file), std::string::npos);
  EXPECT_NE(std::string(shape.status().message()).find("[2, 3]"), std::string::npos);
  auto dtype = (*c)->Take("w", {2, 3}, {StDtype::kBF16});
  ASSERT_FALSE(dtype.ok());
  EXPECT_NE(std::string(dtype.status().message()).find("expected BF16"), std::string::npos);
}

TEST_F(CheckpointTest, RejectsInconsistentIndexes) {
  ASSERT_TRUE(WriteSafetensors((dir_ / "a.safetensors").string(), {{"x", at::ones({2})}, {"z", at::ones({1})}}).ok());
  WriteIndex(R"({"weight_map":{"x":"a.safetensors"}})");
  EXPECT_FALSE(Checkpoint::Open(dir_.string()).ok()) << "z is in a shard but not in the index";
  WriteIndex(R"({"weight_map":{"x":"a.safetensors","z":"a.safetensors","q":"a.safetensors"}})");
  EXPECT_FALSE(Checkpoint::Open(dir_.string()).ok()) << "q is in the index but not in the shard";
  WriteIndex(R"({"weight_map":{"x":"missing.safetensors"}})");
  EXPECT_FALSE(Checkpoint::Open(dir_.string()).ok());
  WriteIndex(R"({"weight_map":{"x":"../a.safetensors"}})");
  EXPECT_FALSE(Checkpoint::Open(dir_.string()).ok());
  WriteIndex("{");
  EXPECT_FALSE(Checkpoint::Open(dir_.string()).ok());
}

TEST_F(CheckpointTest, EmptyFolderIsNotFound) {
  EXPECT_EQ(Checkpoint::Open(dir_.string()).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace magi
