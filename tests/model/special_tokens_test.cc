// special_tokens.npz: reading (fp16 rounding, errors), writing (round trip) and the flags.
#include "worker/model/special_tokens.h"

#include <unistd.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "worker/model/special_token_flags.h"

namespace magi {
namespace {

namespace fs = std::filesystem;

// An independent stored-ZIP .npz writer (local headers only, float64 arrays): what the
// reader must accept besides WriteSpecialTokens' output.
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

std::string TempPath(const std::string& stem) {
  return (fs::temp_directory_path() / (stem + "_" + std::to_string(::getpid()) + ".npz")).string();
}

TEST(SpecialTokensTest, NpzRoundsThroughFloat16) {
  at::manual_seed(1);
  at::Tensor cap = at::randn({1, 8}, at::kDouble) * 0.125, logo = at::randn({1, 8}, at::kDouble),
             other = at::randn({100, 8}, at::kDouble);
  const std::string path = TempPath("magi_tokens");
  WriteNpz(path, {{"caption_token", cap}, {"logo_token", logo}, {"other_tokens", other}});
  auto t = SpecialTokens::Load(path);
  ASSERT_TRUE(t.ok()) << t.status();
  // Rounded to fp16: equal to the fp16 value, not to the float64 one.
  at::Tensor half = cap.to(at::kHalf).to(at::kFloat);
  EXPECT_LT(((*t)->caption() - half).abs().max().item<double>(), 1e-7);
  EXPECT_GT(((*t)->caption().to(at::kDouble) - cap).abs().max().item<double>(), 0.0);
  EXPECT_EQ((*t)->other(16).sizes(), (std::vector<int64_t>{1, 8}));
  WriteNpz(path, {{"caption_token", cap}, {"logo_token", logo}});
  auto missing = SpecialTokens::Load(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("other_tokens"), std::string::npos);
  fs::remove(path);
  EXPECT_FALSE(SpecialTokens::Load(path).ok());
}

TEST(SpecialTokensTest, WrittenFileLoadsBackAndIsAValidZip) {
  const int64_t C = 6;
  at::Tensor other = at::arange(100 * C, at::kDouble).view({100, C}) / 1024.0;  // exact in fp16
  at::Tensor cap = at::full({1, C}, 0.5, at::kDouble), logo = at::full({1, C}, -0.25, at::kDouble);
  const std::string path = TempPath("magi_tokens_written");
  ASSERT_TRUE(WriteSpecialTokens(path, cap, logo, other).ok());
  auto t = SpecialTokens::Load(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->width(), C);
  EXPECT_TRUE(at::equal((*t)->caption(), cap.to(at::kFloat)));
  EXPECT_TRUE(at::equal((*t)->logo(), logo.to(at::kFloat)));
  EXPECT_TRUE(at::equal((*t)->other(9), other.slice(0, 9, 10).to(at::kFloat)));
  // numpy reads the central directory: the file must end with an end-of-central-directory
  // record listing the three entries.
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 22u);
  EXPECT_EQ(bytes.substr(bytes.size() - 22, 4), std::string("PK\x05\x06", 4));
  EXPECT_EQ(static_cast<unsigned char>(bytes[bytes.size() - 22 + 10]), 3);
  fs::remove(path);
  // Shapes are checked before anything is written.
  EXPECT_FALSE(WriteSpecialTokens(path, cap, logo, other.slice(0, 0, 10)).ok());
  EXPECT_FALSE(fs::exists(path));
}

TEST(SpecialTokenFlagsTest, NamesAndDefaults) {
  SpecialTokenFlags f;
  EXPECT_FALSE(f.any());
  EXPECT_EQ(SpecialTokenFlags::Fields().size(), 8u);
  const SpecialTokenFlags d = SpecialTokenFlags::RunScriptDefaults();
  EXPECT_EQ(d.EnabledNames(), (std::vector<std::string>{"PAD_HQ", "PAD_DURATION"}));
  f.neg_prompt = true;
  f.pad_static = true;
  EXPECT_EQ(f.EnabledNames(), (std::vector<std::string>{"PAD_STATIC", "NEG_PROMPT"}));
  EXPECT_NE(f, d);
}

}  // namespace
}  // namespace magi
