// TenantRateLimiter: per-tenant admission rate for Submit (--tenant_submits_per_minute). Each
// tenant has a token bucket of `per_minute` tokens refilled continuously at per_minute / 60
// per second: a tenant may submit `per_minute` jobs at once, then one every 60 / per_minute
// seconds. Tenants are the configured ones (the client tokens file) or the anonymous one, so
// the map stays small.
//
// Thread-compatible: the caller serialises calls (JobManager holds its lock).
#ifndef MAGI_SERVER_TENANT_RATE_LIMITER_H_
#define MAGI_SERVER_TENANT_RATE_LIMITER_H_

#include <cstdint>
#include <map>
#include <string>

namespace magi {

class TenantRateLimiter {
 public:
  // per_minute 0 = no limit.
  explicit TenantRateLimiter(int per_minute = 0) : per_minute_(per_minute) {}

  bool enabled() const { return per_minute_ > 0; }
  int per_minute() const { return per_minute_; }

  // Takes one token of `tenant` at `now_ms` if it has one. Otherwise returns false and sets
  // *retry_after_ms to when the next token is due.
  bool TryTake(const std::string& tenant, int64_t now_ms, int64_t* retry_after_ms);

 private:
  struct Bucket {
    double tokens = 0;
    int64_t at_ms = 0;
  };
  int per_minute_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace magi

#endif  // MAGI_SERVER_TENANT_RATE_LIMITER_H_
