// Caption cleaning exactly as MAGI-1's T5Embedder.text_preprocessing: clean_caption applied
// twice (spec/pipeline.md §4.3). The reference chains Python `re` substitutions (Unicode
// \w \d \s \b), urllib's unquote_plus, BeautifulSoup(html.parser).text, ftfy.fix_text and
// html.unescape; each is re-implemented here with the same semantics, the regex steps on
// ICU regex with Python's character classes substituted in.
//
// Known gap: ftfy's mojibake repair (fix_encoding) is not ported. Because the reference
// lower-cases before ftfy, most mojibake is no longer repairable by then (golden case A23);
// single-level UTF-8-as-cp1252 mojibake in three-byte characters ("â€™") would be repaired
// by the reference and is left as is here (docs/t5.md).
//
// Thread safety: all functions are thread-safe (compiled patterns are shared read-only).
#ifndef MAGI_WORKER_T5_CAPTION_CLEAN_H_
#define MAGI_WORKER_T5_CAPTION_CLEAN_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace magi {

// One clean_caption pass over valid UTF-8 (callers validate; invalid bytes become U+FFFD).
// Fails only where the reference raises (see HtmlParserText).
absl::StatusOr<std::string> CleanCaptionOnce(std::string_view caption);
// The reference's text_preprocessing: CleanCaptionOnce twice. This is what gets tokenised.
absl::StatusOr<std::string> CleanCaption(std::string_view caption);

// The individual library behaviours, exposed for tests.
// urllib.parse.unquote_plus.
std::string PyUnquotePlus(std::string_view s);
// BeautifulSoup(s, "html.parser").text (bs4 4.11-4.13 on CPython 3.11's html.parser).
// Fails only where the reference raises (a "<![" marked section with an unknown keyword).
absl::StatusOr<std::string> HtmlParserText(std::string_view s);
// html.unescape.
std::string PyHtmlUnescape(std::string_view s);
// ftfy 6.2 fix_text with the default config, minus fix_encoding (see above).
std::string FtfyFixText(std::string_view s);

}  // namespace magi

#endif  // MAGI_WORKER_T5_CAPTION_CLEAN_H_
