// The generated character-reference tables (worker/t5/caption_tables.cc, written by
// worker/t5/caption_tables_gen.py): sorted as the binary searches in caption_clean_html.cc and
// caption_clean_ftfy.cc need, and complete (the WHATWG list's size, every legacy name with its
// ';' twin, every C1 control remapped, every noncharacter dropped). The ctest
// caption_tables_generated regenerates the file and diffs it.
#include "worker/t5/caption_tables.h"

#include <cstring>
#include <set>
#include <string>

#include <gtest/gtest.h>

namespace magi {
namespace {

using caption_tables::NamedEntity;

const char* Find(const NamedEntity* table, size_t n, const std::string& name) {
  for (size_t i = 0; i < n; ++i) {
    if (name == table[i].name) return table[i].value;
  }
  return nullptr;
}

void ExpectSortedUnique(const NamedEntity* table, size_t n, const char* what) {
  for (size_t i = 1; i < n; ++i) {
    EXPECT_LT(std::strcmp(table[i - 1].name, table[i].name), 0)
        << what << ": '" << table[i - 1].name << "' before '" << table[i].name << "'";
  }
}

TEST(CaptionTablesTest, Html5EntitiesAreSortedAndComplete) {
  using caption_tables::kHtml5Entities;
  const size_t n = caption_tables::kHtml5EntityCount;
  EXPECT_EQ(n, 2231u);  // len(html.entities.html5): the WHATWG named character references
  ExpectSortedUnique(kHtml5Entities, n, "kHtml5Entities");
  size_t legacy = 0;
  for (size_t i = 0; i < n; ++i) {
    const std::string name = kHtml5Entities[i].name;
    ASSERT_FALSE(name.empty());
    EXPECT_NE(*kHtml5Entities[i].value, '\0') << name;
    if (name.back() != ';') {  // a legacy name without ';' has its ';' twin, same value
      ++legacy;
      const char* twin = Find(kHtml5Entities, n, name + ";");
      ASSERT_NE(twin, nullptr) << name;
      EXPECT_STREQ(twin, kHtml5Entities[i].value) << name;
    }
  }
  EXPECT_EQ(legacy, 106u);  // the WHATWG list's names allowed without ';'
  EXPECT_STREQ(Find(kHtml5Entities, n, "amp;"), "&");
  EXPECT_STREQ(Find(kHtml5Entities, n, "quest;"), "?");
  EXPECT_STREQ(Find(kHtml5Entities, n, "bsol;"), "\\");
  EXPECT_STREQ(Find(kHtml5Entities, n, "Afr;"), "\xF0\x9D\x94\x84");  // U+1D504, 4-byte UTF-8
  EXPECT_STREQ(Find(kHtml5Entities, n, "NewLine;"), "\n");
}

TEST(CaptionTablesTest, FtfyUpperEntitiesAreSortedAndDerivedFromLowerCaseNames) {
  using caption_tables::kFtfyUpperEntities;
  const size_t n = caption_tables::kFtfyUpperEntityCount;
  EXPECT_EQ(n, 1376u);
  ExpectSortedUnique(kFtfyUpperEntities, n, "kFtfyUpperEntities");
  for (size_t i = 0; i < n; ++i) {
    const std::string name = kFtfyUpperEntities[i].name;
    ASSERT_EQ(name.back(), ';') << name;
    // Never shadows a real entity (ftfy only adds names html.unescape leaves alone).
    EXPECT_EQ(Find(caption_tables::kHtml5Entities, caption_tables::kHtml5EntityCount, name), nullptr) << name;
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_NE(Find(caption_tables::kHtml5Entities, caption_tables::kHtml5EntityCount, lower), nullptr) << name;
  }
  EXPECT_STREQ(Find(kFtfyUpperEntities, n, "NTILDE;"), "\xC3\x91");  // Ñ
}

TEST(CaptionTablesTest, NumericReferenceTablesAreSortedAndComplete) {
  std::set<uint32_t> from;
  for (size_t i = 0; i < caption_tables::kInvalidCharrefCount; ++i) {
    if (i > 0) EXPECT_LT(caption_tables::kInvalidCharrefs[i - 1].from, caption_tables::kInvalidCharrefs[i].from);
    from.insert(caption_tables::kInvalidCharrefs[i].from);
  }
  EXPECT_EQ(caption_tables::kInvalidCharrefCount, 34u);
  for (uint32_t c = 0x80; c <= 0x9F; ++c) EXPECT_TRUE(from.count(c)) << std::hex << c;  // all C1 controls
  EXPECT_TRUE(from.count(0x00) && from.count(0x0D));

  const uint32_t* cp = caption_tables::kInvalidCodepoints;
  const size_t n = caption_tables::kInvalidCodepointCount;
  EXPECT_EQ(n, 126u);
  std::set<uint32_t> dropped(cp, cp + n);
  for (size_t i = 1; i < n; ++i) EXPECT_LT(cp[i - 1], cp[i]);
  for (uint32_t plane = 0; plane <= 0x10; ++plane) {  // every plane's two noncharacters
    EXPECT_TRUE(dropped.count(plane << 16 | 0xFFFE) && dropped.count(plane << 16 | 0xFFFF)) << plane;
  }
  for (uint32_t c = 0xFDD0; c <= 0xFDEF; ++c) EXPECT_TRUE(dropped.count(c)) << std::hex << c;
}

}  // namespace
}  // namespace magi
