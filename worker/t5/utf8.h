// UTF-8 <-> code point helpers with Python's semantics where the reference relies on them.
// Stateless functions; thread-safe.
#ifndef MAGI_WORKER_T5_UTF8_H_
#define MAGI_WORKER_T5_UTF8_H_

#include <string>
#include <string_view>

namespace magi {

// Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s);
// Byte offset of the first invalid sequence, or npos.
size_t FirstInvalidUtf8(std::string_view s);
// Decodes like Python's bytes.decode("utf-8", "replace"): each maximal invalid subpart
// becomes one U+FFFD.
std::u32string DecodeUtf8(std::string_view s);
// Encodes code points; lone surrogates are written as U+FFFD.
std::string EncodeUtf8(std::u32string_view s);

}  // namespace magi

#endif  // MAGI_WORKER_T5_UTF8_H_
