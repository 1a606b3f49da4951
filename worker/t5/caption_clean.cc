#include "worker/t5/caption_clean.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include "absl/strings/str_cat.h"
#include "worker/t5/caption_tables.h"
#include "worker/t5/utf8.h"

namespace magi {
namespace {

using icu::UnicodeString;

// ---------------------------------------------------------------------------------------
// Python `re` on ICU: Python's Unicode classes differ from ICU's (ICU's \w includes marks,
// its \s lacks U+001C..001F, its \b follows its own \w), so they are substituted explicitly.
constexpr const char* kPyWord = "\\p{L}\\p{N}_";
constexpr const char* kPySpace = "\\t\\n\\x{0b}\\f\\r\\x{1c}-\\x{1f}\\x{85}\\p{Z}";

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

bool IsHex(UChar c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int HexVal(UChar c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }
bool IsAsciiAlpha(UChar c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiDigit(UChar c) { return c >= '0' && c <= '9'; }
bool IsAsciiAlnum(UChar c) { return IsAsciiAlpha(c) || IsAsciiDigit(c); }

// ------------------------------------------------------------------------------ unquote
UnicodeString UnquotePlus(const UnicodeString& in) {
  UnicodeString s(in);
  s.findAndReplace(UnicodeString(u"+"), UnicodeString(u" "));
  if (s.indexOf(u'%') < 0) return s;
  // Percent escapes are decoded only inside runs of ASCII; each run is decoded as UTF-8
  // on its own with errors="replace" (urllib.parse.unquote).
  UnicodeString out;
  int32_t i = 0;
  const int32_t n = s.length();
  while (i < n) {
    int32_t j = i;
    if (s[i] >= 0x80) {
      while (j < n && s[j] >= 0x80) ++j;
      out.append(s, i, j - i);
    } else {
      while (j < n && s[j] < 0x80) ++j;
      std::string bytes;
      for (int32_t k = i; k < j; ++k) {
        if (s[k] == '%' && k + 2 < j && IsHex(s[k + 1]) && IsHex(s[k + 2])) {
          bytes.push_back(static_cast<char>(HexVal(s[k + 1]) * 16 + HexVal(s[k + 2])));
          k += 2;
        } else {
          bytes.push_back(static_cast<char>(s[k]));
        }
      }
      out.append(FromUtf8(bytes));
    }
    i = j;
  }
  return out;
}

// --------------------------------------------------------------------------- entities
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

// ----------------------------------------------------------------- html.parser + bs4
constexpr const char* kVoidTags[] = {"area", "base", "br", "col", "embed", "hr", "img", "input", "keygen",
                                     "link", "menuitem", "meta", "param", "source", "track", "wbr", "basefont",
                                     "bgsound", "command", "frame", "image", "isindex", "nextid", "spacer"};
constexpr const char* kContainerTags[] = {"rt", "rp", "style", "script", "template"};  // strings not in .text

bool InList(const std::string& name, const char* const* list, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (name == list[i]) return true;
  }
  return false;
}

// The BeautifulSoup tree builder, reduced to what decides `.text`: which strings exist, in
// what order, and whether they count (NavigableString and CData do; strings inside
// rt/rp/style/script/template, comments, declarations and PIs do not).
class SoupText {
 public:
  enum class Kind { kText, kCData, kOther };
  void Data(const UnicodeString& s) {
    current_.append(s);
    has_current_ = true;
  }
  void EndData(Kind kind = Kind::kText) {
    if (!has_current_) return;
    UnicodeString s = current_;
    current_.remove();
    has_current_ = false;
    if (preserve_ == 0) {
      bool all_space = true;
      for (int32_t i = 0; i < s.length() && all_space; ++i) {
        const UChar c = s[i];
        all_space = c == ' ' || c == '\n' || c == '\t' || c == '\f' || c == '\r';
      }
      if (all_space) s = s.indexOf(u'\n') >= 0 ? UnicodeString(u"\n") : UnicodeString(u" ");
    }
    if (kind == Kind::kCData || (kind == Kind::kText && containers_ == 0)) text_.append(s);
  }
  void StartTag(const std::string& name, bool handle_empty_element) {
    EndData();
    stack_.push_back(name);
    ++open_[name];
    if (name == "pre" || name == "textarea") ++preserve_;
    if (InList(name, kContainerTags, std::size(kContainerTags))) ++containers_;
    if (handle_empty_element && InList(name, kVoidTags, std::size(kVoidTags))) {
      EndTag(name, /*check_already_closed=*/false);
      already_closed_.push_back(name);
    }
  }
  void EndTag(const std::string& name, bool check_already_closed) {
    if (check_already_closed) {
      auto it = std::find(already_closed_.begin(), already_closed_.end(), name);
      if (it != already_closed_.end()) {
        already_closed_.erase(it);
        return;
      }
    }
    EndData();
    if (open_[name] == 0) return;
    while (!stack_.empty()) {
      const std::string top = stack_.back();
      Pop();
      if (top == name) break;
    }
  }
  // A comment/declaration/PI/CDATA node.
  void Node(const UnicodeString& data, Kind kind) {
    EndData();
    Data(data);
    EndData(kind);
  }
  UnicodeString Finish() {
    EndData();
    return text_;
  }

 private:
  void Pop() {
    const std::string name = stack_.back();
    stack_.pop_back();
    --open_[name];
    if (name == "pre" || name == "textarea") --preserve_;
    if (InList(name, kContainerTags, std::size(kContainerTags))) --containers_;
  }
  UnicodeString current_, text_;
  bool has_current_ = false;
  std::vector<std::string> stack_;
  std::map<std::string, int> open_;
  std::vector<std::string> already_closed_;
  int preserve_ = 0, containers_ = 0;
};

struct HtmlPatterns {
  PyRegex locatestarttagend{
      "<[a-zA-Z][^\\t\\n\\r\\f />\\x{00}]*(?:[\\s/]*(?:(?<=['\"\\s/])[^\\s/>][^\\s/=>]*(?:\\s*=+\\s*(?:'[^']*'|\"[^\"]*\"|(?!['\"])[^>\\s]*)\\s*)?(?:\\s|/(?!>))*)*)?\\s*"};
  PyRegex tagfind{"([a-zA-Z][^\\t\\n\\r\\f />\\x{00}]*)(?:\\s|/(?!>))*"};
  PyRegex attrfind{
      "((?<=['\"\\s/])[^\\s/>][^\\s/=>]*)(\\s*=+\\s*('[^']*'|\"[^\"]*\"|(?!['\"])[^>\\s]*))?(?:\\s|/(?!>))*"};
  PyRegex endtagfind{"</\\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\\s*>"};
  PyRegex commentclose{"--\\s*>"};
  PyRegex markedsectionclose{"]\\s*]\\s*>"};
  PyRegex msmarkedsectionclose{"]\\s*>"};
  PyRegex declname{"[a-zA-Z][-_.a-zA-Z0-9]*\\s*"};
  PyRegex charref{"&#(?:[0-9]+|[xX][0-9a-fA-F]+)[^0-9a-fA-F]"};
  PyRegex entityref{"&([a-zA-Z][-.a-zA-Z0-9]*)[^a-zA-Z0-9]"};
};
const HtmlPatterns& Html() {
  static const HtmlPatterns p;
  return p;
}

// CPython 3.11 html.parser.HTMLParser (convert_charrefs=False, as bs4 sets it) driving SoupText.
class HtmlParser {
 public:
  explicit HtmlParser(SoupText& soup) : soup_(soup) {}

  absl::Status Feed(const UnicodeString& data) {
    raw_.append(data);
    return GoAhead(false);
  }
  absl::Status Close() { return GoAhead(true); }

 private:
  bool StartsWith(int32_t i, const char16_t* lit) const {
    const int32_t n = static_cast<int32_t>(std::char_traits<char16_t>::length(lit));
    return raw_.compare(i, n, UnicodeString(lit)) == 0 && i + n <= raw_.length();
  }
  int32_t Find(UChar c, int32_t from) const { return raw_.indexOf(c, from); }
  UnicodeString Sub(int32_t b, int32_t e) const { return UnicodeString(raw_, b, e - b); }

  // Python's lower() of a tag name.
  static std::string LowerName(const UnicodeString& s) { return ToUtf8(PyLower(s)); }

  absl::Status GoAhead(bool end) {
    const HtmlPatterns& P = Html();
    int32_t i = 0;
    const int32_t n = raw_.length();
    while (i < n) {
      int32_t j;
      if (!cdata_elem_.empty()) {
        const int32_t at = cdata_close_->Search(raw_, i);
        if (at < 0) break;
        j = at;
      } else {
        int32_t a = raw_.indexOf(u'&', i), l = raw_.indexOf(u'<', i);
        j = (a < 0) ? l : (l < 0 ? a : std::min(a, l));
        if (j < 0) j = n;
      }
      if (i < j) soup_.Data(Sub(i, j));
      i = j;
      if (i == n) break;
      if (raw_[i] == u'<') {
        int32_t k;
        if (i + 1 < n && IsAsciiAlpha(raw_[i + 1])) {
          k = ParseStartTag(i);
        } else if (StartsWith(i, u"</")) {
          k = ParseEndTag(i);
        } else if (StartsWith(i, u"<!--")) {
          k = ParseComment(i);
        } else if (StartsWith(i, u"<?")) {
          k = ParsePi(i);
        } else if (StartsWith(i, u"<!")) {
          auto r = ParseDeclaration(i);
          if (!r.ok()) return r.status();
          k = *r;
        } else if (i + 1 < n) {
          soup_.Data(UnicodeString(u"<"));
          k = i + 1;
        } else {
          break;
        }
        if (k < 0) {
          if (!end) break;
          k = Find(u'>', i + 1);
          if (k < 0) {
            k = Find(u'<', i + 1);
            if (k < 0) k = i + 1;
          } else {
            k += 1;
          }
          soup_.Data(Sub(i, k));
        }
        i = k;
      } else if (StartsWith(i, u"&#")) {
        const int32_t e = P.charref.MatchAt(raw_, i);
        if (e >= 0) {
          HandleCharref(Sub(i + 2, e - 1));
          i = raw_[e - 1] == u';' ? e : e - 1;
          continue;
        }
        if (raw_.indexOf(u';', i) >= 0) {
          soup_.Data(Sub(i, i + 2));
          i += 2;
        }
        break;
      } else {  // '&'
        icu::RegexMatcher* mp = nullptr;
        const int32_t e = P.entityref.MatchAt(raw_, i, &mp);
        if (e >= 0) {
          std::unique_ptr<icu::RegexMatcher> m(mp);
          UErrorCode st = U_ZERO_ERROR;
          HandleEntityref(m->group(1, st));
          i = raw_[e - 1] == u';' ? e : e - 1;
          continue;
        }
        const bool incomplete = i + 1 < n && (IsAsciiAlpha(raw_[i + 1]) || raw_[i + 1] == u'#');
        if (incomplete) {
          if (end && i + 2 == n) i = i + 1;
          break;
        } else if (i + 1 < n) {
          soup_.Data(UnicodeString(u"&"));
          i += 1;
        } else {
          break;
        }
      }
    }
    if (end && i < n && cdata_elem_.empty()) {
      soup_.Data(Sub(i, n));
      i = n;
    }
    raw_.remove(0, i);
    return absl::OkStatus();
  }

  int32_t CheckForWholeStartTag(int32_t i) {
    const int32_t j = Html().locatestarttagend.MatchAt(raw_, i);
    if (j < 0) return -1;  // cannot happen: the pattern matches "<" + letter
    if (j >= raw_.length()) return -1;
    const UChar next = raw_[j];
    if (next == u'>') return j + 1;
    if (next == u'/') {
      if (StartsWith(j, u"/>")) return j + 2;
      return -1;  // "/" at the end of the buffer, or a lone '/'
    }
    if (IsAsciiAlpha(next) || next == u'=' || next == u'/') return -1;
    return j > i ? j : i + 1;
  }

  int32_t ParseStartTag(int32_t i) {
    const HtmlPatterns& P = Html();
    const int32_t endpos = CheckForWholeStartTag(i);
    if (endpos < 0) return endpos;
    icu::RegexMatcher* mp = nullptr;
    int32_t k = P.tagfind.MatchAt(raw_, i + 1, &mp);
    std::unique_ptr<icu::RegexMatcher> m(mp);
    UErrorCode st = U_ZERO_ERROR;
    const std::string tag = LowerName(m->group(1, st));
    while (k < endpos) {
      const int32_t e = P.attrfind.MatchAt(raw_, k);
      if (e < 0) break;
      k = e;
    }
    const UnicodeString endtext = PyStrip(Sub(k, endpos));
    if (endtext != UnicodeString(u">") && endtext != UnicodeString(u"/>")) {
      soup_.Data(Sub(i, endpos));
      return endpos;
    }
    if (endtext.endsWith(UnicodeString(u"/>"))) {
      // bs4's handle_startendtag: start without the void-element auto-close, then end.
      soup_.StartTag(tag, /*handle_empty_element=*/false);
      soup_.EndTag(tag, /*check_already_closed=*/true);
    } else {
      soup_.StartTag(tag, /*handle_empty_element=*/true);
      if (tag == "script" || tag == "style") {
        cdata_elem_ = tag;
        cdata_close_ = std::make_unique<PyRegex>(absl::StrCat("</\\s*", tag, "\\s*>"), UREGEX_CASE_INSENSITIVE);
      }
    }
    return endpos;
  }

  int32_t ParseEndTag(int32_t i) {
    const HtmlPatterns& P = Html();
    int32_t gtpos = Find(u'>', i + 1);
    if (gtpos < 0) return -1;
    gtpos += 1;
    icu::RegexMatcher* mp = nullptr;
    const int32_t e = P.endtagfind.MatchAt(raw_, i, &mp);
    std::unique_ptr<icu::RegexMatcher> m(mp);
    UErrorCode st = U_ZERO_ERROR;
    if (e < 0) {
      if (!cdata_elem_.empty()) {
        soup_.Data(Sub(i, gtpos));
        return gtpos;
      }
      icu::RegexMatcher* np = nullptr;
      const int32_t ne = P.tagfind.MatchAt(raw_, i + 2, &np);
      std::unique_ptr<icu::RegexMatcher> nm(np);
      if (ne < 0) {
        if (StartsWith(i, u"</>")) return i + 3;
        return ParseBogusComment(i);
      }
      const std::string tagname = LowerName(nm->group(1, st));
      const int32_t g = Find(u'>', ne);
      soup_.EndTag(tagname, true);
      return g + 1;
    }
    const std::string elem = LowerName(m->group(1, st));
    if (!cdata_elem_.empty() && elem != cdata_elem_) {
      soup_.Data(Sub(i, gtpos));
      return gtpos;
    }
    soup_.EndTag(elem, true);
    cdata_elem_.clear();
    cdata_close_.reset();
    return e;
  }

  int32_t ParseComment(int32_t i) {
    int32_t end = 0;
    const int32_t s = Html().commentclose.Search(raw_, i + 4, &end);
    if (s < 0) return -1;
    soup_.Node(Sub(i + 4, s), SoupText::Kind::kOther);
    return end;
  }
  int32_t ParseBogusComment(int32_t i) {
    const int32_t pos = Find(u'>', i + 2);
    if (pos < 0) return -1;
    soup_.Node(Sub(i + 2, pos), SoupText::Kind::kOther);
    return pos + 1;
  }
  int32_t ParsePi(int32_t i) {
    const int32_t pos = Find(u'>', i + 2);
    if (pos < 0) return -1;
    soup_.Node(Sub(i + 2, pos), SoupText::Kind::kOther);
    return pos + 1;
  }
  absl::StatusOr<int32_t> ParseDeclaration(int32_t i) {
    if (StartsWith(i, u"<!--")) return ParseComment(i);
    if (StartsWith(i, u"<![")) return ParseMarkedSection(i);
    if (PyLower(Sub(i, std::min(i + 9, raw_.length()))) == UnicodeString(u"<!doctype")) {
      const int32_t gt = Find(u'>', i + 9);
      if (gt < 0) return -1;
      soup_.Node(Sub(i + 2, gt), SoupText::Kind::kOther);
      return gt + 1;
    }
    return ParseBogusComment(i);
  }
  absl::StatusOr<int32_t> ParseMarkedSection(int32_t i) {
    const int32_t n = raw_.length();
    const int32_t start = i + 3;
    if (start == n) return -1;
    const int32_t e = Html().declname.MatchAt(raw_, start);
    if (e < 0) {
      return absl::InvalidArgumentError(
          "caption: '<![' must be followed by a marked-section keyword (the reference's HTML parser raises here)");
    }
    if (e == n) return -1;
    const std::string name = ToUtf8(PyLower(PyStrip(Sub(start, e))));
    int32_t mend = 0, ms = -1;
    if (name == "temp" || name == "cdata" || name == "ignore" || name == "include" || name == "rcdata") {
      ms = Html().markedsectionclose.Search(raw_, start, &mend);
    } else if (name == "if" || name == "else" || name == "endif") {
      ms = Html().msmarkedsectionclose.Search(raw_, start, &mend);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "caption: unknown marked-section keyword '<![", name, "' (the reference's HTML parser raises here)"));
    }
    if (ms < 0) return -1;
    UnicodeString data = Sub(start, ms);
    UnicodeString upper(data);
    upper.toUpper(icu::Locale::getRoot());
    if (upper.startsWith(UnicodeString(u"CDATA["))) {
      soup_.Node(UnicodeString(data, 6), SoupText::Kind::kCData);
    } else {
      soup_.Node(data, SoupText::Kind::kOther);
    }
    return mend;
  }

  void HandleCharref(const UnicodeString& name) {
    // bs4: values below 256 are read as windows-1252 first (C1 range), then chr().
    std::string s = ToUtf8(name);
    uint64_t v = 0;
    const bool hex = s[0] == 'x' || s[0] == 'X';
    size_t p = 0;
    if (hex) {
      while (p < s.size() && (s[p] == 'x' || s[p] == 'X')) ++p;  // int(name.lstrip('x'), 16)
    }
    for (; p < s.size(); ++p) {
      v = v * (hex ? 16 : 10) + static_cast<uint64_t>(hex ? HexVal(s[p]) : s[p] - '0');
      if (v > 0x7FFFFFFF) v = 0x7FFFFFFF;
    }
    static const uint16_t kCp1252[32] = {0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                         0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017D, 0,
                                         0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                         0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};
    UChar32 c;
    if (v >= 0x80 && v < 0xA0 && kCp1252[v - 0x80] != 0) {
      c = kCp1252[v - 0x80];
    } else if (v > 0x10FFFF) {
      c = 0xFFFD;
    } else {
      c = static_cast<UChar32>(v);
    }
    soup_.Data(CodePoint(c));
  }
  void HandleEntityref(const UnicodeString& name) {
    const std::string n = ToUtf8(name);
    const char* v = Html5(n + ";");
    if (!v) v = Html5(n);
    if (v) {
      soup_.Data(UnicodeString::fromUTF8(v));
    } else {
      soup_.Data(UnicodeString(u"&") + name);
    }
  }

  SoupText& soup_;
  UnicodeString raw_;
  std::string cdata_elem_;
  std::unique_ptr<PyRegex> cdata_close_;
};

absl::StatusOr<UnicodeString> HtmlText(const UnicodeString& s) {
  SoupText soup;
  HtmlParser parser(soup);
  if (auto st = parser.Feed(s); !st.ok()) return st;
  if (auto st = parser.Close(); !st.ok()) return st;
  return soup.Finish();
}

// ------------------------------------------------------------------------------- ftfy
const PyRegex& FtfyEntityRe() {
  static const PyRegex re("&#?[0-9A-Za-z]{1,24};");
  return re;
}

UnicodeString FtfyUnescape(const UnicodeString& s) {
  return FtfyEntityRe().Sub(s, [](icu::RegexMatcher& m) {
    UErrorCode st = U_ZERO_ERROR;
    const UnicodeString t = m.group(st);
    const std::string key = ToUtf8(UnicodeString(t, 1));  // without '&'
    if (key[0] != '#') {
      if (const char* v = Html5(key)) return UnicodeString::fromUTF8(v);
      if (const char* v = FindEntity(caption_tables::kFtfyUpperEntities, caption_tables::kFtfyUpperEntityCount, key)) {
        return UnicodeString::fromUTF8(v);
      }
      return t;
    }
    const UnicodeString u = HtmlUnescape(t);
    return u.indexOf(u';') >= 0 ? t : u;
  });
}

UChar32 MapWidth(UChar32 c, UnicodeString* out) {
  // U+3000 and the half/full-width block, mapped to their NFKC forms (ftfy's WIDTH_MAP).
  if (c == 0x3000) {
    out->append(UChar32(' '));
    return 1;
  }
  if (c >= 0xFF01 && c < 0xFFF0) {
    UErrorCode st = U_ZERO_ERROR;
    const icu::Normalizer2* nfkc = icu::Normalizer2::getNFKCInstance(st);
    const UnicodeString src(c);
    const UnicodeString alt = nfkc->normalize(src, st);
    if (U_SUCCESS(st) && alt != src) {
      out->append(alt);
      return 1;
    }
  }
  return 0;
}

UnicodeString FixSegment(UnicodeString text, bool unescape) {
  static const PyRegex ansi("\\x{1b}\\[((?:\\d|;)*)([a-zA-Z])");
  UErrorCode st = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(st);
  static const uint16_t kSloppy1252[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                           0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                           0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                           0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
  for (;;) {
    const UnicodeString orig = text;
    if (unescape) text = FtfyUnescape(text);
    UnicodeString out;
    for (int32_t i = 0; i < text.length(); i = text.moveIndex32(i, 1)) {
      UChar32 c = text.char32At(i);
      if (c >= 0x80 && c <= 0x9F) c = kSloppy1252[c - 0x80];  // fix_c1_controls
      out.append(c);
    }
    text = out;
    out.remove();
    for (int32_t i = 0; i < text.length(); i = text.moveIndex32(i, 1)) {  // fix_latin_ligatures
      const UChar32 c = text.char32At(i);
      switch (c) {
        case 0x0132: out.append(u"IJ"); break;
        case 0x0133: out.append(u"ij"); break;
        case 0x0149: out.append(u"\u02BCn"); break;
        case 0x01F1: out.append(u"DZ"); break;
        case 0x01F2: out.append(u"Dz"); break;
        case 0x01F3: out.append(u"dz"); break;
        case 0x01C4: out.append(u"D\u017D"); break;
        case 0x01C5: out.append(u"D\u017E"); break;
        case 0x01C6: out.append(u"d\u017E"); break;
        case 0x01C7: out.append(u"LJ"); break;
        case 0x01C8: out.append(u"Lj"); break;
        case 0x01C9: out.append(u"lj"); break;
        case 0x01CA: out.append(u"NJ"); break;
        case 0x01CB: out.append(u"Nj"); break;
        case 0x01CC: out.append(u"nj"); break;
        case 0xFB00: out.append(u"ff"); break;
        case 0xFB01: out.append(u"fi"); break;
        case 0xFB02: out.append(u"fl"); break;
        case 0xFB03: out.append(u"ffi"); break;
        case 0xFB04: out.append(u"ffl"); break;
        case 0xFB05: out.append(u"\u017Ft"); break;
        case 0xFB06: out.append(u"st"); break;
        default: out.append(c);
      }
    }
    text = out;
    out.remove();
    for (int32_t i = 0; i < text.length(); i = text.moveIndex32(i, 1)) {  // fix_character_width
      const UChar32 c = text.char32At(i);
      if (!MapWidth(c, &out)) out.append(c);
    }
    text = out;
    out.remove();
    for (int32_t i = 0; i < text.length(); i = text.moveIndex32(i, 1)) {  // uncurl_quotes, line breaks
      const UChar32 c = text.char32At(i);
      if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) {
        out.append(UChar32('\''));
      } else if (c >= 0x201C && c <= 0x201F) {
        out.append(UChar32('"'));
      } else if (c == '\r') {
        out.append(UChar32('\n'));
        if (i + 1 < text.length() && text[i + 1] == u'\n') ++i;
      } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
        out.append(UChar32('\n'));
      } else {
        out.append(c);
      }
    }
    text = ansi.Sub(out, "");  // remove_terminal_escapes
    out.remove();
    for (int32_t i = 0; i < text.length(); i = text.moveIndex32(i, 1)) {  // remove_control_chars
      const UChar32 c = text.char32At(i);
      const bool drop = (c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
                        (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
      if (!drop) out.append(c);
    }
    st = U_ZERO_ERROR;
    text = nfc->normalize(out, st);
    if (text == orig) return text;
  }
}

UnicodeString FixText(const UnicodeString& text) {
  UnicodeString out;
  bool unescape = true;  // unescape_html="auto": off for good once a segment holds '<'
  int32_t pos = 0;
  const int32_t n = text.length();
  while (pos < n) {
    int32_t brk = text.indexOf(u'\n', pos);
    brk = brk < 0 ? n : brk + 1;
    const UnicodeString seg(text, pos, brk - pos);
    if (unescape && seg.indexOf(u'<') >= 0) unescape = false;
    out.append(FixSegment(seg, unescape));
    pos = brk;
  }
  return out;
}

// ----------------------------------------------------------------------- clean_caption
struct CleanPatterns {
  PyRegex person{"<person>"};
  PyRegex url1{
      "\\b((?:https?:(?:\\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\\w/-]*\\b\\/?(?!@)))"};
  PyRegex url2{
      "\\b((?:www:(?:\\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\\w/-]*\\b\\/?(?!@)))"};
  PyRegex mention{"@[\\w\\d]+\\b"};
  PyRegex cjk{"[\\u31c0-\\u31ef\\u31f0-\\u31ff\\u3200-\\u32ff\\u3300-\\u33ff\\u3400-\\u4dbf\\u4dc0-\\u4dff\\u4e00-\\u9fff]+"};
  PyRegex dashes{
      "[\\u002D\\u058A\\u05BE\\u1400\\u1806\\u2010-\\u2015\\u2E17\\u2E1A\\u2E3A\\u2E3B\\u2E40\\u301C\\u3030\\u30A0"
      "\\uFE31\\uFE32\\uFE58\\uFE63\\uFF0D]+"};
  PyRegex dquotes{"[`\u00b4\u00ab\u00bb\u201c\u201d\u00a8]"};
  PyRegex squotes{"[\u2018\u2019]"};
  PyRegex quot{"&quot;?"};
  PyRegex amp{"&amp"};
  PyRegex ip{"\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}"};
  PyRegex article{"\\d:\\d\\d\\s+$"};
  PyRegex backslash_n{"\\\\n"};
  PyRegex hash3{"#\\d{1,3}\\b"};
  PyRegex hash5{"#\\d{5,}\\b"};
  PyRegex digits6{"\\b\\d{6,}\\b"};
  PyRegex filenames{"[\\S]+\\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)"};
  PyRegex quotes2{"[\\\"\\']{2,}"};
  PyRegex dots2{"[\\.]{2,}"};
  PyRegex bad_punct{"[#\u00ae\u2022\u00a9\u2122&@\u00b7\u00ba\u00bd\u00be\u00bf\u00a1\u00a7~\\)\\(\\]\\[\\}\\{\\|\\\\\\/\\*]{1,}"};
  PyRegex spaced_dot{"\\s+\\.\\s+"};
  PyRegex dash_or_underscore{"(?:\\-|\\_)"};
  PyRegex code1{"\\b[a-zA-Z]{1,3}\\d{3,15}\\b"};
  PyRegex code2{"\\b[a-zA-Z]+\\d+[a-zA-Z]+\\b"};
  PyRegex code3{"\\b\\d+[a-zA-Z]+\\d+\\b"};
  PyRegex shipping{"(worldwide\\s+)?(free\\s+)?shipping"};
  PyRegex download{"(free\\s)?download(\\sfree)?"};
  PyRegex click{"\\bclick\\b\\s(?:for|on)\\s\\w+"};
  PyRegex filetype{"\\b(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)(\\simage[s]?)?"};
  PyRegex page{"\\bpage\\s+\\d+\\b"};
  PyRegex code4{"\\b\\d*[a-zA-Z]+\\d+[a-zA-Z]+\\d+[a-zA-Z\\d]*\\b"};
  PyRegex size{"\\b\\d+\\.?\\d*[x\u0445\u00d7]\\d+\\.?\\d*\\b"};
  PyRegex colon{"\\b\\s+\\:\\s+"};
  PyRegex punct_space{"(\\D[,\\./])\\b"};
  PyRegex spaces{"\\s+"};
  PyRegex outer_quotes{"^[\\\"\\']([\\w\\W]+)[\\\"\\']$"};
  PyRegex lead_punct{"^[\\'\\_,\\-\\:;]"};
  PyRegex trail_punct{"[\\'\\_,\\-\\:\\-\\+]$"};
  PyRegex hidden_file{"^\\.\\S+$"};
};
const CleanPatterns& Clean() {
  static const CleanPatterns p;
  return p;
}

absl::StatusOr<UnicodeString> CleanOnce(const UnicodeString& input) {
  const CleanPatterns& P = Clean();
  UnicodeString c = UnquotePlus(input);
  c = PyLower(PyStrip(c));
  c = P.person.Sub(c, "person");
  c = P.url1.Sub(c, "");
  c = P.url2.Sub(c, "");
  auto html = HtmlText(c);
  if (!html.ok()) return html.status();
  c = *html;
  c = P.mention.Sub(c, "");
  c = P.cjk.Sub(c, "");
  c = P.dashes.Sub(c, "-");
  c = P.dquotes.Sub(c, "\"");
  c = P.squotes.Sub(c, "'");
  c = P.quot.Sub(c, "");
  c = P.amp.Sub(c, "");
  c = P.ip.Sub(c, " ");
  c = P.article.Sub(c, "");
  c = P.backslash_n.Sub(c, " ");
  c = P.hash3.Sub(c, "");
  c = P.hash5.Sub(c, "");
  c = P.digits6.Sub(c, "");
  c = P.filenames.Sub(c, "");
  c = P.quotes2.Sub(c, "\"");
  c = P.dots2.Sub(c, " ");
  c = P.bad_punct.Sub(c, " ");
  c = P.spaced_dot.Sub(c, " ");
  int dashes = 0;
  for (int32_t i = 0; i < c.length(); ++i) dashes += (c[i] == u'-' || c[i] == u'_');
  if (dashes > 3) c = P.dash_or_underscore.Sub(c, " ");
  // basic_clean: ftfy, html.unescape twice, strip.
  c = PyStrip(HtmlUnescape(HtmlUnescape(FixText(c))));
  c = P.code1.Sub(c, "");
  c = P.code2.Sub(c, "");
  c = P.code3.Sub(c, "");
  c = P.shipping.Sub(c, "");
  c = P.download.Sub(c, "");
  c = P.click.Sub(c, "");
  c = P.filetype.Sub(c, "");
  c = P.page.Sub(c, "");
  c = P.code4.Sub(c, " ");
  c = P.size.Sub(c, "");
  c = P.colon.Sub(c, ": ");
  c = P.punct_space.Sub(c, "\\1 ");
  c = P.spaces.Sub(c, " ");
  // (The reference calls caption.strip() here and discards the result.)
  c = P.outer_quotes.Sub(c, "\\1");
  c = P.lead_punct.Sub(c, "");
  c = P.trail_punct.Sub(c, "");
  c = P.hidden_file.Sub(c, "");
  return PyStrip(c);
}

}  // namespace

absl::StatusOr<std::string> CleanCaptionOnce(std::string_view caption) {
  auto r = CleanOnce(FromUtf8(caption));
  if (!r.ok()) return r.status();
  return ToUtf8(*r);
}

absl::StatusOr<std::string> CleanCaption(std::string_view caption) {
  auto once = CleanOnce(FromUtf8(caption));
  if (!once.ok()) return once.status();
  auto twice = CleanOnce(*once);
  if (!twice.ok()) return twice.status();
  return ToUtf8(*twice);
}

std::string PyUnquotePlus(std::string_view s) { return ToUtf8(UnquotePlus(FromUtf8(s))); }

absl::StatusOr<std::string> HtmlParserText(std::string_view s) {
  auto r = HtmlText(FromUtf8(s));
  if (!r.ok()) return r.status();
  return ToUtf8(*r);
}

std::string PyHtmlUnescape(std::string_view s) { return ToUtf8(HtmlUnescape(FromUtf8(s))); }

std::string FtfyFixText(std::string_view s) { return ToUtf8(FixText(FromUtf8(s))); }

}  // namespace magi
