// Caption cleaning against the reference's outputs (golden caption_clean.json) and against
// single library behaviours (unquote_plus, html.parser + bs4, html.unescape, ftfy).
#include "worker/t5/caption_clean.h"

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace magi {
namespace {

nlohmann::json LoadCases() {
  std::ifstream in(std::string(MAGI_GOLDEN_DIR) + "/caption_clean.json");
  EXPECT_TRUE(in.good());
  return nlohmann::json::parse(in);
}

TEST(CaptionCleanTest, GoldenCasesOnceAndTwice) {
  const auto j = LoadCases();
  ASSERT_GE(j["cases"].size(), 40u);
  int checked = 0;
  for (const auto& c : j["cases"]) {
    const std::string id = c["id"], input = c["input"];
    auto once = CleanCaptionOnce(input);
    ASSERT_TRUE(once.ok()) << id << ": " << once.status();
    EXPECT_EQ(*once, c["once"].get<std::string>()) << id;
    auto full = CleanCaption(input);
    ASSERT_TRUE(full.ok()) << id;
    EXPECT_EQ(*full, c["output"].get<std::string>()) << id;
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(j["cases"].size()));
}

TEST(CaptionCleanTest, UnquotePlus) {
  EXPECT_EQ(PyUnquotePlus("a+b%20c%2Bd"), "a b c+d");
  EXPECT_EQ(PyUnquotePlus("%zz%4"), "%zz%4");
  EXPECT_EQ(PyUnquotePlus("%C3%A9"), "\xC3\xA9");
  EXPECT_EQ(PyUnquotePlus("%C3"), "\xEF\xBF\xBD");        // invalid UTF-8 -> U+FFFD
  EXPECT_EQ(PyUnquotePlus("%%41"), "%A");
}

TEST(CaptionCleanTest, HtmlParserText) {
  EXPECT_EQ(*HtmlParserText("<p>a <b>b</b></p>"), "a b");
  EXPECT_EQ(*HtmlParserText("x<script>var a = 1;</script>y"), "xy");
  EXPECT_EQ(*HtmlParserText("a<!-- c -->b"), "ab");
  EXPECT_EQ(*HtmlParserText("a &lt; b &foo; c"), "a < b &foo c");  // bs4 drops ';' of unknown names
  EXPECT_EQ(*HtmlParserText("&#147;q&#x41;"), "\xE2\x80\x9CqA");  // windows-1252 for < 256
  EXPECT_EQ(*HtmlParserText("1 < 2"), "1 < 2");
  EXPECT_EQ(*HtmlParserText("a<![CDATA[raw]]>b"), "arawb");
  EXPECT_FALSE(HtmlParserText("a<![bogus x]]>").ok());
}

TEST(CaptionCleanTest, HtmlUnescape) {
  EXPECT_EQ(PyHtmlUnescape("&amp;&ampx&#65;&#x42&notit;"), "&&xAB\xC2\xACit;");
  EXPECT_EQ(PyHtmlUnescape("&#0;&#128;"), "\xEF\xBF\xBD\xE2\x82\xAC");
}

TEST(CaptionCleanTest, FtfyFixText) {
  EXPECT_EQ(FtfyFixText("\xEF\xAC\x81ne \xEF\xBC\xA1"), "fine A");     // ligature, full width
  EXPECT_EQ(FtfyFixText("\xE2\x80\x9Cq\xE2\x80\x9D"), "\"q\"");        // curly quotes
  EXPECT_EQ(FtfyFixText("a&eacute;b"), "a\xC3\xA9" "b");                // entity decoded
  EXPECT_EQ(FtfyFixText("<a&eacute;b"), "<a&eacute;b");                 // not when '<' present
  EXPECT_EQ(FtfyFixText("e\xCC\x81"), "\xC3\xA9");                      // NFC
}

TEST(CaptionCleanTest, Examples) {
  EXPECT_EQ(*CleanCaption("\"Good Boy\""), "good boy");
  EXPECT_EQ(*CleanCaption(""), "");
}

}  // namespace
}  // namespace magi
