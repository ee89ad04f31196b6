#include "tests/kubesim/faults.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <type_traits>

namespace kiln::kubesim {
namespace {

const std::map<std::string, FaultAction>& ActionNames() {
  static const std::map<std::string, FaultAction> kNames = {
      {"error", FaultAction::kError},
      {"throttle", FaultAction::kThrottle},
      {"tooManyRequests", FaultAction::kTooManyRequests},
      {"drop", FaultAction::kDrop},
      {"endWatch", FaultAction::kEndWatch},
      {"expireWatch", FaultAction::kExpireWatch},
      {"delay", FaultAction::kDelay},
  };
  return kNames;
}

std::string ActionName(FaultAction action) {
  for (const auto& [name, a] : ActionNames()) {
    if (a == action) return name;
  }
  return "";
}

ApiResult<FaultRule> ParseRule(const json& spec, size_t index) {
  std::string where = "rules[" + std::to_string(index) + "]";
  if (!spec.is_object()) return Fail(BadRequest(where + ": must be an object"));
  FaultRule rule;
  auto text = [&](const char* key, std::string& out) -> std::optional<ApiError> {
    if (!spec.contains(key)) return std::nullopt;
    if (!spec[key].is_string()) return BadRequest(where + "." + key + ": must be a string");
    out = spec[key].get<std::string>();
    return std::nullopt;
  };
  auto integer = [&](const char* key, auto& out, int64_t min) -> std::optional<ApiError> {
    if (!spec.contains(key)) return std::nullopt;
    if (!spec[key].is_number_integer() || spec[key].get<int64_t>() < min) {
      return BadRequest(where + "." + key + ": must be an integer >= " + std::to_string(min));
    }
    out = static_cast<std::remove_reference_t<decltype(out)>>(spec[key].get<int64_t>());
    return std::nullopt;
  };
  static const std::vector<std::string> kKeys = {
      "action",    "verb",    "resource",          "namespace",   "name",
      "code",      "message", "retryAfterSeconds", "afterEvents", "afterSeconds",
      "latencyMs", "count",   "probability"};
  for (const auto& [key, value] : spec.items()) {
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      return Fail(BadRequest(where + ": unknown field \"" + key + "\""));
    }
  }
  std::string action;
  if (auto e = text("action", action)) return Fail(*e);
  auto it = ActionNames().find(action);
  if (it == ActionNames().end()) {
    return Fail(BadRequest(where + ".action: must be one of error, throttle, tooManyRequests, "
                                   "drop, endWatch, expireWatch, delay"));
  }
  rule.action = it->second;
  for (auto e :
       {text("verb", rule.verb), text("resource", rule.resource), text("namespace", rule.ns),
        text("name", rule.name), text("message", rule.message), integer("code", rule.code, 400),
        integer("retryAfterSeconds", rule.retry_after_seconds, 0)}) {
    if (e) return Fail(*e);
  }
  if (spec.contains("afterEvents")) {
    int64_t n = 0;
    if (auto e = integer("afterEvents", n, 0)) return Fail(*e);
    rule.after_events = n;
  }
  if (spec.contains("afterSeconds")) {
    const json& s = spec["afterSeconds"];
    if (!s.is_number() || s.get<double>() < 0 || s.get<double>() > 86400) {
      return Fail(BadRequest(where + ".afterSeconds: must be a number from 0 to 86400"));
    }
    rule.after_time = std::chrono::milliseconds(std::llround(s.get<double>() * 1000));
  }
  if ((rule.after_events || rule.after_time) && rule.action != FaultAction::kEndWatch) {
    return Fail(BadRequest(where + ": afterEvents and afterSeconds apply to endWatch only"));
  }
  if (spec.contains("latencyMs")) {
    int64_t ms = 0;
    if (auto e = integer("latencyMs", ms, 0)) return Fail(*e);
    rule.latency = std::chrono::milliseconds(ms);
  } else if (rule.action == FaultAction::kDelay) {
    return Fail(BadRequest(where + ".latencyMs: required by the delay action"));
  }
  rule.retry_after_given = spec.contains("retryAfterSeconds");
  if (rule.code > 599) return Fail(BadRequest(where + ".code: must be an HTTP error code"));
  if (spec.contains("count")) {
    int64_t count = 0;
    if (auto e = integer("count", count, 1)) return Fail(*e);
    rule.count = count;
  }
  if (spec.contains("probability")) {
    const json& p = spec["probability"];
    if (!p.is_number() || p.get<double>() < 0 || p.get<double>() > 1) {
      return Fail(BadRequest(where + ".probability: must be a number from 0 to 1"));
    }
    rule.probability = p.get<double>();
  }
  return rule;
}

}  // namespace

ApiResult<bool> Faults::Set(const json& spec) {
  if (!spec.is_object()) return Fail(BadRequest("faults: must be an object with \"rules\""));
  uint64_t seed = 1;
  if (spec.contains("seed")) {
    if (!spec["seed"].is_number_unsigned()) {
      return Fail(BadRequest("seed: must be a non-negative integer"));
    }
    seed = spec["seed"].get<uint64_t>();
  }
  for (const auto& [key, value] : spec.items()) {
    if (key != "seed" && key != "rules" && key != "rateLimit") {
      return Fail(BadRequest("faults: unknown field \"" + key + "\""));
    }
  }
  std::optional<RateLimitSpec> rate_limit;
  if (spec.contains("rateLimit")) {
    auto parsed = RateLimitSpec::FromJson(spec["rateLimit"]);
    if (!parsed) return Fail(parsed.error());
    rate_limit = *parsed;
  }
  std::vector<FaultRule> rules;
  if (spec.contains("rules")) {
    if (!spec["rules"].is_array()) return Fail(BadRequest("rules: must be a list"));
    for (size_t i = 0; i < spec["rules"].size(); ++i) {
      auto rule = ParseRule(spec["rules"][i], i);
      if (!rule) return Fail(rule.error());
      rules.push_back(std::move(*rule));
    }
  }
  rules_ = std::move(rules);
  seed_ = seed;
  random_.seed(seed);
  SetRateLimit(rate_limit);
  return true;
}

void Faults::SetRateLimit(const std::optional<RateLimitSpec>& spec) {
  limiter_.reset();
  if (spec) limiter_.emplace(*spec);
}

json Faults::ToJson() const {
  json rules = json::array();
  for (const FaultRule& r : rules_) {
    json j = {{"action", ActionName(r.action)}, {"fired", r.fired}};
    if (!r.verb.empty()) j["verb"] = r.verb;
    if (!r.resource.empty()) j["resource"] = r.resource;
    if (!r.ns.empty()) j["namespace"] = r.ns;
    if (!r.name.empty()) j["name"] = r.name;
    if (r.action == FaultAction::kError) {
      j["code"] = r.code;
      j["message"] = r.message;
    }
    if (r.action == FaultAction::kThrottle || r.action == FaultAction::kTooManyRequests ||
        r.retry_after_given) {
      j["retryAfterSeconds"] = r.retry_after_seconds;
    }
    if (r.after_events) j["afterEvents"] = *r.after_events;
    if (r.after_time) j["afterSeconds"] = static_cast<double>(r.after_time->count()) / 1000;
    if (r.latency.count() > 0) j["latencyMs"] = r.latency.count();
    if (r.count) j["count"] = *r.count;
    if (r.probability < 1) j["probability"] = r.probability;
    rules.push_back(std::move(j));
  }
  json out = {{"seed", seed_}, {"rules", rules}};
  if (limiter_) out["rateLimit"] = limiter_->spec().ToJson();
  return out;
}

std::optional<FaultRule> Faults::Match(const RequestInfo& info) {
  std::string resource = info.resource;
  if (!info.subresource.empty()) resource += "/" + info.subresource;
  for (FaultRule& r : rules_) {
    bool watch_only = r.action == FaultAction::kEndWatch || r.action == FaultAction::kExpireWatch;
    if (watch_only && info.verb != "watch") continue;
    if (!r.verb.empty() && r.verb != info.verb) continue;
    if (!r.resource.empty() && r.resource != resource) continue;
    if (!r.ns.empty() && r.ns != info.ns) continue;
    if (!r.name.empty() && r.name != info.name) continue;
    if (r.count && r.fired >= *r.count) continue;
    if (r.probability < 1 &&
        std::uniform_real_distribution<double>(0, 1)(random_) >= r.probability) {
      continue;
    }
    ++r.fired;
    return r;
  }
  return std::nullopt;
}

ApiError FaultError(const FaultRule& rule) {
  switch (rule.action) {
    case FaultAction::kTooManyRequests:
    case FaultAction::kThrottle:
      return TooManyRequests(rule.retry_after_seconds);
    default:
      break;
  }
  ApiError e;
  switch (rule.code) {
    case 500:
      e = InternalError(rule.message);
      break;
    case 503:
      e = ServiceUnavailable(rule.message);
      break;
    case 504:
      e = {504, "Timeout", "Timeout: " + rule.message, {}};
      break;
    case 429:
      return TooManyRequests(rule.retry_after_seconds);
    default:
      e = {rule.code, "", rule.message, {}};
  }
  // A Retry-After on a 5xx makes client-go retry it; only when the rule asks for one.
  if (rule.retry_after_given) e.details["retryAfterSeconds"] = rule.retry_after_seconds;
  return e;
}

}  // namespace kiln::kubesim
