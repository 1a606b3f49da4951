// ftfy 6.2 fix_text with the default config, minus fix_encoding (caption_clean.h says why).
#include "worker/t5/caption_clean_internal.h"

#include <unicode/normalizer2.h>

namespace magi {
namespace caption_clean_internal {
namespace {

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

}  // namespace

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

}  // namespace caption_clean_internal
}  // namespace magi
