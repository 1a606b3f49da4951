// html.unescape (CPython 3.11) over the WHATWG entity table (caption_tables.cc).
#include "worker/t5/caption_clean_internal.h"

#include <algorithm>
#include <cstring>

namespace magi {
namespace caption_clean_internal {
namespace {

// html.unescape's numeric reference rules; `digits` without '#', 'x' or ';'.
UnicodeString NumericCharref(const std::string& digits, bool hex) {
  // Saturate: anything above U+10FFFF behaves the same.
  uint64_t num = 0;
  for (char c : digits) {
    num = num * (hex ? 16 : 10) + static_cast<uint64_t>(hex ? HexVal(c) : c - '0');
    if (num > 0x7FFFFFFF) num = 0x7FFFFFFF;
  }
  for (size_t i = 0; i < caption_tables::kInvalidCharrefCount; ++i) {
    if (caption_tables::kInvalidCharrefs[i].from == num) return UnicodeString(UChar32(caption_tables::kInvalidCharrefs[i].to));
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return UnicodeString(UChar32(0xFFFD));
  if (std::binary_search(caption_tables::kInvalidCodepoints,
                         caption_tables::kInvalidCodepoints + caption_tables::kInvalidCodepointCount,
                         static_cast<uint32_t>(num))) {
    return UnicodeString();
  }
  return UnicodeString(static_cast<UChar32>(num));
}

const PyRegex& CharrefRe() {
  static const PyRegex re("&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\\t\\n\\f <&#;]{1,32};?)");
  return re;
}

}  // namespace

const char* FindEntity(const caption_tables::NamedEntity* table, size_t count, const std::string& name) {
  const auto* end = table + count;
  const auto* it = std::lower_bound(table, end, name, [](const caption_tables::NamedEntity& e, const std::string& k) {
    return std::strcmp(e.name, k.c_str()) < 0;
  });
  if (it != end && name == it->name) return it->value;
  return nullptr;
}
const char* Html5(const std::string& name) {
  return FindEntity(caption_tables::kHtml5Entities, caption_tables::kHtml5EntityCount, name);
}

UnicodeString CodePoint(UChar32 c) {
  if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;  // lone surrogates: ftfy would make them U+FFFD
  return UnicodeString(c);
}

UnicodeString HtmlUnescape(const UnicodeString& s) {
  if (s.indexOf(u'&') < 0) return s;
  return CharrefRe().Sub(s, [](icu::RegexMatcher& m) {
    UErrorCode st = U_ZERO_ERROR;
    const UnicodeString g = m.group(1, st);
    std::string body = ToUtf8(g);
    if (body[0] == '#') {
      const bool hex = body.size() > 1 && (body[1] == 'x' || body[1] == 'X');
      std::string digits = body.substr(hex ? 2 : 1);
      if (!digits.empty() && digits.back() == ';') digits.pop_back();
      return NumericCharref(digits, hex);
    }
    if (const char* v = Html5(body)) return UnicodeString::fromUTF8(v);
    // Longest prefix that is a (semicolon-less) entity name.
    const UnicodeString gs = g;
    for (int32_t x = gs.countChar32() - 1; x > 1; --x) {
      const int32_t cut = gs.moveIndex32(0, x);
      if (const char* v = Html5(ToUtf8(UnicodeString(gs, 0, cut)))) {
        UnicodeString out = UnicodeString::fromUTF8(v);
        out.append(gs, cut, gs.length() - cut);
        return out;
      }
    }
    return UnicodeString(u"&") + gs;
  });
}

}  // namespace caption_clean_internal
}  // namespace magi
