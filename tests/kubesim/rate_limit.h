// kubesim's server-side request rate limit: a token bucket per request class, standing in for
// the apiserver's max-inflight and API priority and fairness filters (docs/kubesim.md, Faults).
// The clock is passed in, so tests drive it by hand. Thread-safety: none; owned by the
// io_context thread.
#ifndef KILN_TESTS_KUBESIM_RATE_LIMIT_H_
#define KILN_TESTS_KUBESIM_RATE_LIMIT_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "tests/kubesim/api_error.h"
#include "tests/kubesim/util.h"

namespace kiln::kubesim {

// `qps` tokens a second, at most `burst` saved up.
struct BucketSpec {
  double qps = 0;
  int64_t burst = 0;
};

// Parses "QPS[:BURST]" (`--rate-limit 20:40`). BURST defaults to QPS rounded up (at least 1).
// Returns a BadRequest ApiError naming `what` when QPS is not a number > 0 or BURST not an
// integer >= 1.
ApiResult<BucketSpec> ParseBucketSpec(std::string_view text, std::string_view what);

// A token bucket that starts full at its first use.
class TokenBucket {
 public:
  explicit TokenBucket(BucketSpec spec) : spec_(spec) {}
  // Takes one token at `now` if there is one; false (and takes nothing) otherwise. A clock that
  // goes backwards adds no tokens.
  bool TryTake(SysTime now);
  const BucketSpec& spec() const { return spec_; }

 private:
  BucketSpec spec_;
  double tokens_ = 0;
  std::optional<SysTime> last_;
};

// The limit of `"rateLimit"` in the faults JSON: one bucket for every counted request, or,
// with `mutating`, `all` for reads (get, list, non-resource GETs) and `mutating` for create,
// update, patch, delete and deletecollection, as --max-requests-inflight and
// --max-mutating-requests-inflight split them.
struct RateLimitSpec {
  BucketSpec all;
  std::optional<BucketSpec> mutating;

  // {"qps": 20, "burst": 40, "mutatingQps": 5, "mutatingBurst": 10}; bursts as in
  // ParseBucketSpec. Returns a BadRequest ApiError naming the bad field.
  static ApiResult<RateLimitSpec> FromJson(const json& spec);
  json ToJson() const;
};

class RateLimiter {
 public:
  explicit RateLimiter(const RateLimitSpec& spec);
  // Whether a counted request of that class may proceed at `now` (it takes a token if so).
  bool Admit(bool mutating, SysTime now);
  const RateLimitSpec& spec() const { return spec_; }

 private:
  RateLimitSpec spec_;
  TokenBucket reads_;
  std::optional<TokenBucket> mutating_;
};

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_RATE_LIMIT_H_
