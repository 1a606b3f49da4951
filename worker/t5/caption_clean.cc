#include "worker/t5/caption_clean.h"

#include "base/status_macros.h"
#include "worker/t5/caption_clean_internal.h"

// The reference's clean_caption (MAGI-1 T5Embedder, spec/pipeline.md §4.3): its chain of `re`
// substitutions, with the library calls it makes ported in caption_clean_*.cc.
namespace magi {
namespace {

using caption_clean_internal::FixText;
using caption_clean_internal::FromUtf8;
using caption_clean_internal::HtmlText;
using caption_clean_internal::HtmlUnescape;
using caption_clean_internal::PyLower;
using caption_clean_internal::PyRegex;
using caption_clean_internal::PyStrip;
using caption_clean_internal::ToUtf8;
using caption_clean_internal::UnicodeString;
using caption_clean_internal::UnquotePlus;

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
  MAGI_ASSIGN_OR_RETURN(auto html, HtmlText(c));
  c = html;
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
  MAGI_ASSIGN_OR_RETURN(auto r, CleanOnce(FromUtf8(caption)));
  return ToUtf8(r);
}

absl::StatusOr<std::string> CleanCaption(std::string_view caption) {
  MAGI_ASSIGN_OR_RETURN(auto once, CleanOnce(FromUtf8(caption)));
  MAGI_ASSIGN_OR_RETURN(auto twice, CleanOnce(once));
  return ToUtf8(twice);
}

std::string PyUnquotePlus(std::string_view s) { return ToUtf8(UnquotePlus(FromUtf8(s))); }

absl::StatusOr<std::string> HtmlParserText(std::string_view s) {
  MAGI_ASSIGN_OR_RETURN(auto r, HtmlText(FromUtf8(s)));
  return ToUtf8(r);
}

std::string PyHtmlUnescape(std::string_view s) { return ToUtf8(HtmlUnescape(FromUtf8(s))); }

std::string FtfyFixText(std::string_view s) { return ToUtf8(FixText(FromUtf8(s))); }

}  // namespace magi
