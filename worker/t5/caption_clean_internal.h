// Internal to caption cleaning (caption_clean*.cc, one file per Python library the reference's
// clean_caption calls; caption_clean.h is the public side): the pieces those files share.
//   caption_clean_re.cc      Python `re` and `str` semantics on ICU (PyRegex, strip, lower)
//   caption_clean_urllib.cc  urllib.parse.unquote_plus
//   caption_clean_html.cc    html.unescape and the named-entity tables (caption_tables.cc)
//   caption_clean_bs4.cc     BeautifulSoup(html.parser).text on CPython 3.11's html.parser
//   caption_clean_ftfy.cc    ftfy.fix_text (6.2, default config, minus fix_encoding)
//   caption_clean.cc         the reference's clean_caption itself, and the public functions
// Strings are ICU UnicodeStrings (UTF-16) so that Python's code-point semantics map onto ICU's.
//
// Thread safety: all functions are thread-safe; a PyRegex is immutable after construction.
#ifndef MAGI_WORKER_T5_CAPTION_CLEAN_INTERNAL_H_
#define MAGI_WORKER_T5_CAPTION_CLEAN_INTERNAL_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <unicode/regex.h>
#include <unicode/unistr.h>

#include "absl/status/statusor.h"
#include "worker/t5/caption_tables.h"

namespace magi {
namespace caption_clean_internal {

using icu::UnicodeString;

// ---------------------------------------------------------------- caption_clean_re.cc
// A Python `re` pattern rewritten for ICU with Python's \w \s \d \b and '$' (see the .cc).
std::string TranslatePattern(std::string_view py);

// One compiled Python pattern (re.compile); aborts on a pattern ICU refuses (patterns are
// compile-time constants, so that is a programming error the tests catch).
class PyRegex {
 public:
  explicit PyRegex(std::string_view python_pattern, uint32_t flags = 0) {
    UErrorCode status = U_ZERO_ERROR;
    UParseError pe;
    pattern_.reset(icu::RegexPattern::compile(UnicodeString::fromUTF8(TranslatePattern(python_pattern)), flags,
                                              pe, status));
    if (U_FAILURE(status)) {
      // Patterns are compile-time constants; a failure is a programming error caught by tests.
      fprintf(stderr, "caption_clean: bad pattern %s: %s\n", std::string(python_pattern).c_str(), u_errorName(status));
      abort();
    }
  }
  // re.sub(pattern, fn, s)
  UnicodeString Sub(const UnicodeString& s, const std::function<UnicodeString(icu::RegexMatcher&)>& fn) const {
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexMatcher> m(pattern_->matcher(s, status));
    UnicodeString out;
    int32_t last = 0;
    while (m->find(status) && U_SUCCESS(status)) {
      const int32_t b = m->start(status), e = m->end(status);
      out.append(s, last, b - last);
      out.append(fn(*m));
      last = e;
    }
    out.append(s, last, s.length() - last);
    return out;
  }
  // re.sub with a template where \1 means group 1.
  UnicodeString Sub(const UnicodeString& s, std::string_view repl) const {
    const UnicodeString r = UnicodeString::fromUTF8(std::string(repl));
    return Sub(s, [&](icu::RegexMatcher& m) {
      UnicodeString out;
      UErrorCode st = U_ZERO_ERROR;
      for (int32_t i = 0; i < r.length(); ++i) {
        if (r[i] == u'\\' && i + 1 < r.length() && r[i + 1] >= u'1' && r[i + 1] <= u'9') {
          const int g = r[i + 1] - u'0';
          if (m.start(g, st) >= 0) out.append(m.group(g, st));
          ++i;
        } else {
          out.append(r[i]);
        }
      }
      return out;
    });
  }
  // re.match(pattern, s, pos): the end of the match, or -1.
  int32_t MatchAt(const UnicodeString& s, int32_t pos, icu::RegexMatcher** keep = nullptr) const {
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexMatcher> m(pattern_->matcher(s, status));
    m->useTransparentBounds(true);
    m->region(pos, s.length(), status);
    if (!m->lookingAt(status) || U_FAILURE(status)) return -1;
    const int32_t e = m->end(status);
    if (keep) *keep = m.release();
    return e;
  }
  // re.search(pattern, s, pos): start of the first match at or after pos, or -1; *end its end.
  int32_t Search(const UnicodeString& s, int32_t pos, int32_t* end = nullptr) const {
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexMatcher> m(pattern_->matcher(s, status));
    m->useTransparentBounds(true);
    m->region(pos, s.length(), status);
    if (!m->find(status) || U_FAILURE(status)) return -1;
    if (end) *end = m->end(status);
    return m->start(status);
  }

 private:
  std::unique_ptr<icu::RegexPattern> pattern_;
};

// str.isspace() for one code point; str.strip(); str.lower().
bool IsPySpace(UChar32 c);
UnicodeString PyStrip(const UnicodeString& s);
UnicodeString PyLower(const UnicodeString& s);
// UTF-8 <-> UTF-16; invalid UTF-8 becomes U+FFFD (worker/t5/utf8.h).
UnicodeString FromUtf8(std::string_view s);
std::string ToUtf8(const UnicodeString& s);

inline bool IsHex(UChar c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
inline int HexVal(UChar c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }
inline bool IsAsciiAlpha(UChar c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool IsAsciiDigit(UChar c) { return c >= '0' && c <= '9'; }
inline bool IsAsciiAlnum(UChar c) { return IsAsciiAlpha(c) || IsAsciiDigit(c); }

// ------------------------------------------------------------ caption_clean_urllib.cc
// urllib.parse.unquote_plus.
UnicodeString UnquotePlus(const UnicodeString& in);

// -------------------------------------------------------------- caption_clean_html.cc
// The value (UTF-8) of `name` (without '&', with its ';' if any) in a sorted entity table, or null.
const char* FindEntity(const caption_tables::NamedEntity* table, size_t count, const std::string& name);
// FindEntity in html.entities.html5.
const char* Html5(const std::string& name);
// The code point as a string; lone surrogates become U+FFFD.
UnicodeString CodePoint(UChar32 c);
// html.unescape.
UnicodeString HtmlUnescape(const UnicodeString& s);

// --------------------------------------------------------------- caption_clean_bs4.cc
// BeautifulSoup(s, "html.parser").text; fails only where the reference raises.
absl::StatusOr<UnicodeString> HtmlText(const UnicodeString& s);

// -------------------------------------------------------------- caption_clean_ftfy.cc
// ftfy.fix_text with the default config, minus fix_encoding.
UnicodeString FixText(const UnicodeString& text);

}  // namespace caption_clean_internal
}  // namespace magi

#endif  // MAGI_WORKER_T5_CAPTION_CLEAN_INTERNAL_H_
