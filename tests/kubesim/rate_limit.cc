#include "tests/kubesim/rate_limit.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace kiln::kubesim {
namespace {

int64_t DefaultBurst(double qps) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(qps)));
}

}  // namespace

ApiResult<BucketSpec> ParseBucketSpec(std::string_view text, std::string_view what) {
  std::string qps_text(text.substr(0, text.find(':')));
  BucketSpec spec;
  auto bad = [&] {
    return Fail(BadRequest(std::string(what) +
                           ": must be QPS[:BURST] with QPS > 0 and BURST >= 1, got \"" +
                           std::string(text) + "\""));
  };
  try {
    size_t used = 0;
    spec.qps = std::stod(qps_text, &used);
    if (used != qps_text.size() || !(spec.qps > 0) || !std::isfinite(spec.qps)) return bad();
    spec.burst = DefaultBurst(spec.qps);
    if (size_t colon = text.find(':'); colon != std::string_view::npos) {
      std::string burst_text(text.substr(colon + 1));
      spec.burst = std::stoll(burst_text, &used);
      if (used != burst_text.size() || spec.burst < 1) return bad();
    }
  } catch (const std::exception&) {
    return bad();
  }
  return spec;
}

bool TokenBucket::TryTake(SysTime now) {
  if (!last_) {
    tokens_ = static_cast<double>(spec_.burst);
    last_ = now;
  } else if (now > *last_) {
    std::chrono::duration<double> elapsed = now - *last_;
    tokens_ = std::min(static_cast<double>(spec_.burst), tokens_ + elapsed.count() * spec_.qps);
    last_ = now;
  }
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

ApiResult<RateLimitSpec> RateLimitSpec::FromJson(const json& spec) {
  if (!spec.is_object()) return Fail(BadRequest("rateLimit: must be an object with \"qps\""));
  for (const auto& [key, value] : spec.items()) {
    if (key != "qps" && key != "burst" && key != "mutatingQps" && key != "mutatingBurst") {
      return Fail(BadRequest("rateLimit: unknown field \"" + key + "\""));
    }
  }
  auto bucket = [&](const char* qps_key, const char* burst_key) -> ApiResult<BucketSpec> {
    const json& q = spec[qps_key];
    if (!q.is_number() || !(q.get<double>() > 0)) {
      return Fail(BadRequest(std::string("rateLimit.") + qps_key + ": must be a number > 0"));
    }
    BucketSpec b{q.get<double>(), DefaultBurst(q.get<double>())};
    if (spec.contains(burst_key)) {
      const json& burst = spec[burst_key];
      if (!burst.is_number_integer() || burst.get<int64_t>() < 1) {
        return Fail(
            BadRequest(std::string("rateLimit.") + burst_key + ": must be an integer >= 1"));
      }
      b.burst = burst.get<int64_t>();
    }
    return b;
  };
  if (!spec.contains("qps")) return Fail(BadRequest("rateLimit.qps: required"));
  RateLimitSpec out;
  auto all = bucket("qps", "burst");
  if (!all) return Fail(all.error());
  out.all = *all;
  if (spec.contains("mutatingQps")) {
    auto mutating = bucket("mutatingQps", "mutatingBurst");
    if (!mutating) return Fail(mutating.error());
    out.mutating = *mutating;
  } else if (spec.contains("mutatingBurst")) {
    return Fail(BadRequest("rateLimit.mutatingBurst: needs mutatingQps"));
  }
  return out;
}

json RateLimitSpec::ToJson() const {
  json j = {{"qps", all.qps}, {"burst", all.burst}};
  if (mutating) {
    j["mutatingQps"] = mutating->qps;
    j["mutatingBurst"] = mutating->burst;
  }
  return j;
}

RateLimiter::RateLimiter(const RateLimitSpec& spec) : spec_(spec), reads_(spec.all) {
  if (spec.mutating) mutating_.emplace(*spec.mutating);
}

bool RateLimiter::Admit(bool mutating, SysTime now) {
  if (mutating && mutating_) return mutating_->TryTake(now);
  return reads_.TryTake(now);
}

}  // namespace kiln::kubesim
