// Abseil flags are spelled with underscores; our binaries also accept the dashed spelling
// users type (--state-dir=DIR is --state_dir=DIR). Rewrites argv in place before parsing.
#ifndef MAGI_BASE_DASHED_FLAGS_H_
#define MAGI_BASE_DASHED_FLAGS_H_

namespace magi {

inline void DashesToUnderscores(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* a = argv[i];
    if (a[0] != '-' || a[1] != '-') continue;
    if (a[2] == '\0') break;  // "--" ends the flags
    for (char* c = a + 2; *c && *c != '='; ++c) {
      if (*c == '-') *c = '_';
    }
  }
}

}  // namespace magi

#endif  // MAGI_BASE_DASHED_FLAGS_H_
