#include "server/tenant_rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace magi {

bool TenantRateLimiter::TryTake(const std::string& tenant, int64_t now_ms, int64_t* retry_after_ms) {
  if (per_minute_ <= 0) return true;
  const double capacity = per_minute_;
  const double per_ms = capacity / 60000.0;
  auto [it, fresh] = buckets_.try_emplace(tenant);
  Bucket& b = it->second;
  if (fresh) {
    b.tokens = capacity;
  } else if (now_ms > b.at_ms) {
    b.tokens = std::min(capacity, b.tokens + static_cast<double>(now_ms - b.at_ms) * per_ms);
  }
  b.at_ms = std::max(b.at_ms, now_ms);
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  if (retry_after_ms) *retry_after_ms = static_cast<int64_t>(std::ceil((1.0 - b.tokens) / per_ms));
  return false;
}

}  // namespace magi
