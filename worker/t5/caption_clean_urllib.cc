// urllib.parse.unquote_plus (CPython 3.11), for clean_caption.
#include "worker/t5/caption_clean_internal.h"

namespace magi {
namespace caption_clean_internal {

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

}  // namespace caption_clean_internal
}  // namespace magi
