#include "worker/model/safetensors.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace magi {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("magi_st_" + std::to_string(::getpid()) + "_" + name)).string();
}

void WriteRaw(const std::string& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
}

TEST(SafetensorsTest, RoundTripsEveryDtype) {
  std::map<std::string, at::Tensor> t;
  t["f32"] = at::randn({3, 4});
  t["f16"] = at::randn({5}).to(at::kHalf);
  t["bf16"] = at::randn({2, 2}).to(at::kBFloat16);
  t["i64"] = at::arange(7, at::kLong);
  t["i32"] = at::arange(6, at::kInt).view({2, 3});
  t["bool"] = at::rand({4}) > 0.5;
  t["codes"] = EncodeE4M3(at::randn({3, 3}));
  const std::string path = TempPath("roundtrip.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, t, {{"k", "v"}}, {"codes"}).ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->metadata().at("k"), "v");
  EXPECT_EQ((*f)->Find("codes")->dtype, StDtype::kF8E4M3);
  for (const auto& [k, v] : t) {
    auto got = (*f)->Get(k);
    ASSERT_TRUE(got.ok()) << k;
    EXPECT_TRUE(got->equal(v)) << k;
  }
  EXPECT_FALSE((*f)->Get("absent").ok());
  std::remove(path.c_str());
}

TEST(SafetensorsTest, TensorsOutliveTheFileObject) {
  const std::string path = TempPath("alias.safetensors");
  at::Tensor x = at::randn({64});
  ASSERT_TRUE(WriteSafetensors(path, {{"x", x}}).ok());
  at::Tensor got;
  {
    auto f = SafetensorsFile::Open(path);
    ASSERT_TRUE(f.ok());
    got = *(*f)->Get("x");
  }
  std::remove(path.c_str());
  EXPECT_TRUE(got.equal(x));
}

struct BadCase {
  const char* name;
  std::string header;
  std::string data;
  const char* expect;  // substring of the error
};

TEST(SafetensorsTest, RejectsMalformedFilesWithANamedError) {
  const std::vector<BadCase> cases = {
      {"json", "{not json", "", "malformed JSON"},
      {"dtype", R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", std::string(8, '\0'), "unsupported dtype"},
      {"truncated", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0'), "truncated"},
      {"size", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", std::string(16, '\0'), "needs 12"},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       std::string(12, '\0'), "overlap"},
      // A long range covering two later ones, with an empty tensor between them: only the
      // furthest end seen so far catches it (neighbours alone do not overlap).
      {"overlap_past_neighbour",
       R"({"a":{"dtype":"U8","shape":[100],"data_offsets":[0,100]},"b":{"dtype":"U8","shape":[0],"data_offsets":[10,10]},)"
       R"("c":{"dtype":"U8","shape":[10],"data_offsets":[30,40]}})",
       std::string(100, '\0'), "'a' and 'c' overlap"},
      {"negative", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, '\0'), "non-negative"},
      {"overflow", R"({"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}})",
       std::string(4, '\0'), "overflow"},
      {"missing", R"({"w":{"dtype":"F32","shape":[1]}})", std::string(4, '\0'), "data_offsets"},
  };
  for (const auto& c : cases) {
    const std::string path = TempPath(std::string(c.name) + ".safetensors");
    WriteRaw(path, c.header, c.data);
    auto f = SafetensorsFile::Open(path);
    ASSERT_FALSE(f.ok()) << c.name;
    EXPECT_NE(std::string(f.status().message()).find(c.expect), std::string::npos) << c.name << ": " << f.status();
    EXPECT_NE(std::string(f.status().message()).find(path), std::string::npos) << "error must name the file";
    std::remove(path.c_str());
  }
}

TEST(SafetensorsTest, RejectsShortAndHeaderOverrunFiles) {
  const std::string empty = TempPath("empty.safetensors");
  { std::ofstream out(empty, std::ios::binary); }
  EXPECT_FALSE(SafetensorsFile::Open(empty).ok());
  const std::string overrun = TempPath("overrun.safetensors");
  {
    std::ofstream out(overrun, std::ios::binary);
    uint64_t n = 1000;
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << "{}";
  }
  auto f = SafetensorsFile::Open(overrun);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(std::string(f.status().message()).find("past the end"), std::string::npos);
  EXPECT_EQ(SafetensorsFile::Open(TempPath("does_not_exist")).status().code(), absl::StatusCode::kNotFound);
  std::remove(empty.c_str());
  std::remove(overrun.c_str());
}

TEST(E4M3Test, DecodesTheFormatAndRoundTripsEveryFiniteCode) {
  at::Tensor codes = at::arange(256, at::kLong).to(at::kByte);
  at::Tensor values = DecodeE4M3(codes);
  EXPECT_FLOAT_EQ(values[0x7e].item<float>(), 448.0f);
  EXPECT_FLOAT_EQ(values[0xfe].item<float>(), -448.0f);
  EXPECT_FLOAT_EQ(values[0x01].item<float>(), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_FLOAT_EQ(values[0x38].item<float>(), 1.0f);
  EXPECT_TRUE(std::isnan(values[0x7f].item<float>()));
  at::Tensor finite = at::cat({codes.narrow(0, 0, 127), codes.narrow(0, 128, 127)});
  EXPECT_TRUE(EncodeE4M3(DecodeE4M3(finite)).equal(finite));
  // Saturation and round-to-nearest-even between 1.0 (0x38) and 1.125 (0x39).
  EXPECT_EQ(EncodeE4M3(at::full({1}, 1000.0f))[0].item<uint8_t>(), 0x7e);
  EXPECT_EQ(EncodeE4M3(at::full({1}, 1.0625f))[0].item<uint8_t>(), 0x38);
  EXPECT_EQ(EncodeE4M3(at::full({1}, 1.1f))[0].item<uint8_t>(), 0x39);
}

}  // namespace
}  // namespace magi
