// BeautifulSoup(s, "html.parser").text: bs4 4.11-4.13's tree builder reduced to what decides
// `.text`, driven by a port of CPython 3.11's html.parser.HTMLParser.
#include "worker/t5/caption_clean_internal.h"

#include <map>
#include <string>
#include <vector>

#include <unicode/locid.h>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace magi {
namespace caption_clean_internal {
namespace {

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
          MAGI_ASSIGN_OR_RETURN(auto r, ParseDeclaration(i));
          k = r;
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

}  // namespace

absl::StatusOr<UnicodeString> HtmlText(const UnicodeString& s) {
  SoupText soup;
  HtmlParser parser(soup);
  MAGI_RETURN_IF_ERROR(parser.Feed(s));
  MAGI_RETURN_IF_ERROR(parser.Close());
  return soup.Finish();
}

}  // namespace caption_clean_internal
}  // namespace magi
