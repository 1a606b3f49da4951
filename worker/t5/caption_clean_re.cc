// Python `re` and `str` semantics on ICU, for the ports of caption_clean*.cc.
#include "worker/t5/caption_clean_internal.h"

#include <unicode/locid.h>
#include <unicode/uchar.h>

#include "absl/strings/str_cat.h"
#include "worker/t5/utf8.h"

namespace magi {
namespace caption_clean_internal {
namespace {

constexpr const char* kPyWord = "\\p{L}\\p{N}_";
constexpr const char* kPySpace = "\\t\\n\\x{0b}\\f\\r\\x{1c}-\\x{1f}\\x{85}\\p{Z}";

}  // namespace

// Python `re` on ICU: Python's Unicode classes differ from ICU's (ICU's \w includes marks,
// its \s lacks U+001C..001F, its \b follows its own \w), so they are substituted explicitly.
std::string TranslatePattern(std::string_view py) {
  std::string out;
  bool in_class = false;
  const std::string word = absl::StrCat("[", kPyWord, "]");
  const std::string boundary = absl::StrCat("(?:(?<=", word, ")(?!", word, ")|(?<!", word, ")(?=", word, "))");
  for (size_t i = 0; i < py.size(); ++i) {
    const char c = py[i];
    if (c == '\\' && i + 1 < py.size()) {
      const char e = py[++i];
      switch (e) {
        case 'w': out += in_class ? std::string(kPyWord) : word; break;
        case 'W': out += absl::StrCat("[^", kPyWord, "]"); break;
        case 's': out += in_class ? std::string(kPySpace) : absl::StrCat("[", kPySpace, "]"); break;
        case 'S': out += absl::StrCat("[^", kPySpace, "]"); break;
        case 'd': out += "\\p{Nd}"; break;
        case 'D': out += "\\P{Nd}"; break;
        case 'b':
          out += in_class ? std::string("\\x{08}") : boundary;
          break;
        default:
          out += '\\';
          out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < py.size() && py[i + 1] == '^') out += py[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    if (!in_class && c == '$') {
      out += "(?=\\n?\\z)";  // Python '$': end, or before a final newline
      continue;
    }
    out += c;
  }
  return out;
}

bool IsPySpace(UChar32 c) {
  if (c == '\t' || c == '\n' || c == 0x0b || c == '\f' || c == '\r' || (c >= 0x1c && c <= 0x1f) || c == 0x85) {
    return true;
  }
  const int8_t t = u_charType(c);
  return t == U_SPACE_SEPARATOR || t == U_LINE_SEPARATOR || t == U_PARAGRAPH_SEPARATOR;
}

UnicodeString PyStrip(const UnicodeString& s) {
  int32_t b = 0, e = s.length();
  while (b < e && IsPySpace(s.char32At(b))) b = s.moveIndex32(b, 1);
  while (e > b) {
    const int32_t p = s.moveIndex32(e, -1);
    if (!IsPySpace(s.char32At(p))) break;
    e = p;
  }
  return UnicodeString(s, b, e - b);
}

UnicodeString PyLower(const UnicodeString& s) {
  UnicodeString r(s);
  r.toLower(icu::Locale::getRoot());
  return r;
}

UnicodeString FromUtf8(std::string_view s) { return UnicodeString::fromUTF32(
    reinterpret_cast<const UChar32*>(DecodeUtf8(s).data()), static_cast<int32_t>(DecodeUtf8(s).size())); }

std::string ToUtf8(const UnicodeString& s) {
  std::string out;
  s.toUTF8String(out);
  return out;
}

}  // namespace caption_clean_internal
}  // namespace magi
