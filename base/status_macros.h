// Early-return helpers for absl::Status / absl::StatusOr, as in Abseil-based codebases.
#ifndef MAGI_BASE_STATUS_MACROS_H_
#define MAGI_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MAGI_RETURN_IF_ERROR(expr)           \
  do {                                       \
    ::absl::Status _magi_status = (expr);    \
    if (!_magi_status.ok()) return _magi_status; \
  } while (0)

#define MAGI_STATUS_CONCAT_INNER(a, b) a##b
#define MAGI_STATUS_CONCAT(a, b) MAGI_STATUS_CONCAT_INNER(a, b)

// MAGI_ASSIGN_OR_RETURN(auto x, F()); assigns the value or returns the error.
#define MAGI_ASSIGN_OR_RETURN(lhs, expr) \
  MAGI_ASSIGN_OR_RETURN_IMPL(MAGI_STATUS_CONCAT(_magi_statusor_, __LINE__), lhs, expr)
#define MAGI_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(*tmp)

#endif  // MAGI_BASE_STATUS_MACROS_H_
