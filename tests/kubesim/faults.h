// Fault injection for the tests of kiln's Kubernetes executor: rules that make matching API
// requests fail the ways a real apiserver and network do (500s, 429 with Retry-After, dropped
// connections, added latency, watch streams cut short after N events or a time, 410 Expired on
// watch) and a server-side rate limit. Rules come from `--faults FILE` or
// `POST /kubesim/faults` (docs/kubesim.md). Thread-safety: none; owned by the io_context
// thread.
#ifndef KILN_TESTS_KUBESIM_FAULTS_H_
#define KILN_TESTS_KUBESIM_FAULTS_H_

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tests/kubesim/api_error.h"
#include "tests/kubesim/rate_limit.h"

namespace kiln::kubesim {

using nlohmann::json;

// What the apiserver's request-info resolver makes of a request: the Kubernetes verb (get,
// list, watch, create, update, patch, delete, deletecollection; the lowercase method for
// non-resource paths) and the object it names.
struct RequestInfo {
  bool is_resource = false;
  std::string verb;
  std::string api_group;
  std::string api_version;
  std::string resource;     // "jobs"
  std::string subresource;  // "status", "log" or empty
  std::string ns;
  std::string name;
};

enum class FaultAction {
  kError,            // a Status error with `code` (500 InternalError, 503 ServiceUnavailable, ...)
  kThrottle,         // 429 text/plain with Retry-After, as API priority and fairness answers
  kTooManyRequests,  // 429 Status TooManyRequests with details.retryAfterSeconds and Retry-After
  kDrop,             // the connection closes before any response byte
  kEndWatch,         // a watch ends (clean end of the chunked stream) after `after_events`
  kExpireWatch,      // a watch gets the ERROR event 410 Expired and ends
  kDelay,            // the request is served as usual, its response held for `latency`
};

struct FaultRule {
  FaultAction action = FaultAction::kError;
  // Empty matches anything. `resource` may name a subresource: "pods/log", "jobs/status".
  std::string verb;
  std::string resource;
  std::string ns;
  std::string name;
  int code = 500;
  std::string message = "kubesim injected fault";
  int retry_after_seconds = 1;
  bool retry_after_given = false;  // kError: send Retry-After (client-go retries only then)
  // kEndWatch: the stream ends after this many events, or this long after it started,
  // whichever comes first; at once when neither is given.
  std::optional<int64_t> after_events;
  std::optional<std::chrono::milliseconds> after_time;
  // Any action: its answer (the error, the dropped connection, kDelay's normal response) comes
  // this long after the request; streamed responses (watches, followed logs) start at once.
  std::chrono::milliseconds latency{0};
  double probability = 1.0;
  std::optional<int64_t> count;  // how many times the rule fires; unlimited when absent
  int64_t fired = 0;
};

class Faults {
 public:
  // Replaces the rules and the rate limit with those of `spec` (no "rateLimit": none):
  //   {"seed": 7, "rateLimit": {"qps": 20, "burst": 40},
  //    "rules": [{"action": "error", "verb": "create", "resource": "jobs",
  //               "namespace": "wf", "name": "x", "code": 500, "message": "...",
  //               "retryAfterSeconds": 1, "afterEvents": 3, "afterSeconds": 0.5,
  //               "latencyMs": 200, "count": 2, "probability": 0.5}]}
  // Returns a BadRequest ApiError naming the bad field, leaving everything unchanged.
  ApiResult<bool> Set(const json& spec);
  // Removes the rules and the rate limit.
  void Clear() {
    rules_.clear();
    limiter_.reset();
  }
  // Replaces the rate limit (`--rate-limit`); nullopt removes it.
  void SetRateLimit(const std::optional<RateLimitSpec>& spec);
  // The rules with their `fired` counts and the rate limit, in the form Set takes.
  json ToJson() const;

  // Whether the rate limit lets a counted request of that class through at `now` (always true
  // without a limit). The caller decides which requests are counted (exempt ones are not).
  bool Admit(bool mutating, SysTime now) { return !limiter_ || limiter_->Admit(mutating, now); }

  // The first rule that matches `info`, has firings left and wins its probability draw (drawn
  // from the seeded generator, so a seed replays the same faults for the same request order).
  // Counts the firing. Watch-only actions match only watches.
  std::optional<FaultRule> Match(const RequestInfo& info);

 private:
  std::vector<FaultRule> rules_;
  uint64_t seed_ = 1;
  std::mt19937_64 random_{1};
  std::optional<RateLimiter> limiter_;
};

// The response of a kError, kThrottle or kTooManyRequests rule.
ApiError FaultError(const FaultRule& rule);

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_FAULTS_H_
