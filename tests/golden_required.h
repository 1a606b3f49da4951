// Golden-dependent tests skip when the golden folder is absent (a developer checkout without
// ../shared), unless MAGI_REQUIRE_GOLDEN=1 (CI's .ci/run sets it): then a missing folder fails,
// so a misplaced folder can never turn the golden checks into silent skips.
#ifndef MAGI_TESTS_GOLDEN_REQUIRED_H_
#define MAGI_TESTS_GOLDEN_REQUIRED_H_

#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

namespace magi {
inline bool GoldenRequired() {
  const char* v = std::getenv("MAGI_REQUIRE_GOLDEN");
  return v != nullptr && std::strcmp(v, "1") == 0;
}
}  // namespace magi

#define MAGI_SKIP_WITHOUT_GOLDEN(why)                                  \
  do {                                                                 \
    if (::magi::GoldenRequired()) {                                    \
      FAIL() << why << " (and MAGI_REQUIRE_GOLDEN=1)";                 \
    }                                                                  \
    GTEST_SKIP() << why;                                               \
  } while (0)

#endif  // MAGI_TESTS_GOLDEN_REQUIRED_H_
