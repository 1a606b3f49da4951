#include "api/multipart.h"

#include <string>

#include "gtest/gtest.h"

namespace magi {
namespace {

constexpr char kType[] = "multipart/form-data; boundary=----b0undary";

std::string Body() {
  return "------b0undary\r\n"
         "Content-Disposition: form-data; name=\"prompt\"\r\n\r\n"
         "a red fox; in \"snow\"\r\n"
         "------b0undary\r\n"
         "Content-Disposition: form-data; name=\"input_reference\"; filename=\"fox.png\"\r\n"
         "Content-Type: image/png\r\n\r\n"
         "\x89PNG\r\n\x1a\n--not-a-boundary\r\n"
         "------b0undary--\r\n";
}

TEST(MultipartTest, ParsesFieldsAndFiles) {
  auto parts = ParseMultipartFormData(kType, Body());
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].name, "prompt");
  EXPECT_FALSE((*parts)[0].is_file);
  EXPECT_EQ((*parts)[0].body, "a red fox; in \"snow\"");
  EXPECT_EQ((*parts)[1].name, "input_reference");
  EXPECT_TRUE((*parts)[1].is_file);
  EXPECT_EQ((*parts)[1].filename, "fox.png");
  EXPECT_EQ((*parts)[1].content_type, "image/png");
  EXPECT_EQ((*parts)[1].body, std::string("\x89PNG\r\n\x1a\n--not-a-boundary"));
}

TEST(MultipartTest, QuotedBoundaryAndPreamble) {
  auto parts = ParseMultipartFormData("multipart/form-data; boundary=\"x y\"",
                                      "preamble\r\n--x y\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x y--");
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].name, "a");
  EXPECT_EQ((*parts)[0].body, "1");
}

TEST(MultipartTest, RefusesBrokenBodies) {
  struct Case {
    std::string type, body, message;
  } cases[] = {
      {"application/json", "{}", "Content-Type: 'application/json' is not multipart/form-data"},
      {"multipart/form-data", "x", "needs a boundary"},
      {kType, "no boundary here", "the boundary from Content-Type does not occur"},
      {kType, Body().substr(0, 120), "not closed by a boundary"},
      {kType, "------b0undary\r\nContent-Disposition: form-data\r\n\r\nx\r\n------b0undary--", "has no name"},
      {kType, "------b0undary\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n------b0undary--",
       "expected form-data"},
      {kType, "------b0undary\r\nX-Other: 1\r\n\r\nx\r\n------b0undary--", "no Content-Disposition"},
      {kType, "------b0undary\r\nContent-Disposition: form-data; name=a\r\nx\r\n------b0undary--",
       "no blank line after its headers"},
  };
  for (const Case& c : cases) {
    auto parts = ParseMultipartFormData(c.type, c.body);
    ASSERT_FALSE(parts.ok()) << c.body;
    EXPECT_EQ(parts.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(parts.status().message().find(c.message), std::string::npos) << parts.status();
  }
}

TEST(MultipartTest, LimitsParts) {
  std::string body;
  for (int i = 0; i < 5; ++i) body += "--b\r\nContent-Disposition: form-data; name=f\r\n\r\nv\r\n";
  body += "--b--\r\n";
  EXPECT_TRUE(ParseMultipartFormData("multipart/form-data; boundary=b", body, 5).ok());
  auto parts = ParseMultipartFormData("multipart/form-data; boundary=b", body, 4);
  ASSERT_FALSE(parts.ok());
  EXPECT_NE(parts.status().message().find("more than 4 parts"), std::string::npos);
}

}  // namespace
}  // namespace magi
