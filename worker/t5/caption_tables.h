// Character-reference tables used by caption cleaning (generated data, see caption_tables.cc).
#ifndef MAGI_WORKER_T5_CAPTION_TABLES_H_
#define MAGI_WORKER_T5_CAPTION_TABLES_H_

#include <cstddef>
#include <cstdint>

namespace magi {
namespace caption_tables {

struct NamedEntity {
  const char* name;   // without '&'; with the ';' where the table has it
  const char* value;  // UTF-8
};
struct CharrefFix {
  uint32_t from, to;
};

// WHATWG named references, sorted by name (byte order), as Python's html.entities.html5.
extern const NamedEntity kHtml5Entities[];
extern const size_t kHtml5EntityCount;
// ftfy's extra upper-cased names, sorted.
extern const NamedEntity kFtfyUpperEntities[];
extern const size_t kFtfyUpperEntityCount;
// Python html.unescape: numeric references remapped (C1 -> cp1252, 0 -> U+FFFD, ...).
extern const CharrefFix kInvalidCharrefs[];
extern const size_t kInvalidCharrefCount;
// Python html.unescape: numeric references dropped, sorted.
extern const uint32_t kInvalidCodepoints[];
extern const size_t kInvalidCodepointCount;

}  // namespace caption_tables
}  // namespace magi

#endif  // MAGI_WORKER_T5_CAPTION_TABLES_H_
