// kubesim's rate limit and response latency in process: an ApiServer on an io_context, a fake
// clock for the token buckets, and a responder that records what was answered and in what order.
#include "tests/kubesim/rate_limit.h"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "tests/kubesim/apiserver.h"
#include "tests/kubesim/kubelet.h"

namespace kiln::kubesim {
namespace {

struct Answer {
  std::string label;
  int status = 0;  // 0: the connection was dropped
  std::string content_type;
  std::string retry_after;
  std::string body;
  bool streamed = false;
};

class Recorder : public http::Responder::Impl {
 public:
  Recorder(std::vector<Answer>& answers, std::string label)
      : answers_(answers), label_(std::move(label)) {}
  void Send(http::Response response) override {
    Answer a{label_, response.status, "", "", response.body, false};
    for (const http::Header& h : response.headers) {
      if (h.name == "Content-Type") a.content_type = h.value;
      if (h.name == "Retry-After") a.retry_after = h.value;
    }
    answers_.push_back(std::move(a));
  }
  std::shared_ptr<http::StreamWriter> Stream(int status, std::vector<http::Header>) override {
    answers_.push_back({label_, status, "", "", "", true});
    return nullptr;  // the handler stops at once: enough to see the request was served
  }
  void Abort() override { answers_.push_back({label_, 0, "", "", "", false}); }

 private:
  std::vector<Answer>& answers_;
  std::string label_;
};

struct Server {
  Server() : store(1000), registry(store), kubelet(io, registry) {
    registry.Bootstrap();
    ApiServerOptions options;
    options.now = [this] { return now; };
    api = std::make_unique<ApiServer>(io, registry, kubelet, std::move(options));
  }
  // Sends one request; its answer (if any yet) is appended to `answers` under `label`.
  void Call(const std::string& label, const std::string& method, const std::string& path,
            std::vector<std::pair<std::string, std::string>> query = {},
            const std::string& body = "") {
    http::Request req;
    req.method = method;
    req.path = path;
    req.target = path;
    req.query = std::move(query);
    req.body = body;
    if (!body.empty()) req.headers.push_back({"Content-Type", "application/json"});
    api->Handle(std::move(req), http::Responder(std::make_shared<Recorder>(answers, label)));
  }
  Answer Get(const std::string& path) {
    Call("get", "GET", path);
    REQUIRE(!answers.empty());
    Answer a = answers.back();
    answers.clear();
    return a;
  }

  boost::asio::io_context io;
  Store store;
  Registry registry;
  Kubelet kubelet;
  SysTime now = *ParseRfc3339("2026-01-01T00:00:00Z");
  std::unique_ptr<ApiServer> api;
  std::vector<Answer> answers;
};

const ResourceInfo& Configmaps() { return *FindResource("", "v1", "configmaps"); }

std::string ConfigMap(const std::string& name) {
  return json{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}}.dump();
}

TEST_CASE("QPS[:BURST] parses with the burst defaulting to the QPS rounded up",
          "[kubesim][faults]") {
  auto spec = ParseBucketSpec("20:40", "--rate-limit");
  REQUIRE(spec);
  CHECK(spec->qps == 20);
  CHECK(spec->burst == 40);
  spec = ParseBucketSpec("2.5", "--rate-limit");
  REQUIRE(spec);
  CHECK(spec->burst == 3);
  spec = ParseBucketSpec("0.1", "--rate-limit");
  REQUIRE(spec);
  CHECK(spec->burst == 1);
  for (const char* bad : {"0", "-1", "x", "5:0", "5:", "5:2.5", ""}) {
    INFO(bad);
    auto r = ParseBucketSpec(bad, "--rate-limit");
    REQUIRE_FALSE(r);
    CHECK(r.error().message ==
          std::string("--rate-limit: must be QPS[:BURST] with QPS > 0 and BURST >= 1, got \"") +
              bad + "\"");
  }
}

TEST_CASE("a token bucket starts full, refills at its QPS and never past its burst",
          "[kubesim][faults]") {
  TokenBucket bucket({2, 3});
  SysTime t = *ParseRfc3339("2026-01-01T00:00:00Z");
  for (int i = 0; i < 3; ++i) CHECK(bucket.TryTake(t));
  CHECK_FALSE(bucket.TryTake(t));
  CHECK_FALSE(bucket.TryTake(t + std::chrono::milliseconds(499)));
  CHECK(bucket.TryTake(t + std::chrono::milliseconds(500)));
  CHECK_FALSE(bucket.TryTake(t + std::chrono::milliseconds(500)));
  // A clock that goes backwards adds nothing.
  CHECK_FALSE(bucket.TryTake(t));
  // An hour later: full again, and only to the burst.
  SysTime later = t + std::chrono::hours(1);
  for (int i = 0; i < 3; ++i) CHECK(bucket.TryTake(later));
  CHECK_FALSE(bucket.TryTake(later));
}

TEST_CASE("the rate limit answers APF's 429 past the burst and recovers as the clock moves",
          "[kubesim][faults]") {
  Server s;
  REQUIRE(s.api->faults().Set(json::parse(R"({"rateLimit": {"qps": 2, "burst": 3}})")));
  const std::string list = "/api/v1/namespaces/default/configmaps";
  for (int i = 0; i < 3; ++i) CHECK(s.Get(list).status == 200);
  Answer throttled = s.Get(list);
  CHECK(throttled.status == 429);
  CHECK(throttled.content_type == "text/plain; charset=utf-8");
  CHECK(throttled.body == "Too many requests, please try again later.\n");
  CHECK(throttled.retry_after == "1");
  // Not counted: health checks, the admin endpoints, watches (long-running).
  CHECK(s.Get("/healthz").status == 200);
  CHECK(s.Get("/readyz").status == 200);
  CHECK(s.Get("/kubesim/faults").status == 200);
  s.Call("watch", "GET", list, {{"watch", "true"}});
  REQUIRE(s.answers.size() == 1);
  CHECK(s.answers[0].streamed);
  CHECK(s.answers[0].status == 200);
  s.answers.clear();
  // Discovery is counted, as APF counts it.
  CHECK(s.Get("/api").status == 429);

  s.now += std::chrono::milliseconds(499);
  CHECK(s.Get(list).status == 429);
  s.now += std::chrono::milliseconds(1);
  CHECK(s.Get(list).status == 200);
  CHECK(s.Get(list).status == 429);
  s.now += std::chrono::seconds(10);
  for (int i = 0; i < 3; ++i) CHECK(s.Get(list).status == 200);
  CHECK(s.Get(list).status == 429);

  // GET shows the limit; a POST without "rateLimit" removes it.
  json state = json::parse(s.Get("/kubesim/faults").body);
  CHECK(state["rateLimit"] == json::parse(R"({"qps": 2.0, "burst": 3})"));
  REQUIRE(s.api->faults().Set(json::parse(R"({"rules": []})")));
  for (int i = 0; i < 10; ++i) CHECK(s.Get(list).status == 200);
}

TEST_CASE("with mutatingQps, reads and writes draw from separate buckets", "[kubesim][faults]") {
  Server s;
  REQUIRE(s.api->faults().Set(json::parse(
      R"({"rateLimit": {"qps": 1, "burst": 1, "mutatingQps": 1, "mutatingBurst": 2}})")));
  const std::string list = "/api/v1/namespaces/default/configmaps";
  CHECK(s.Get(list).status == 200);
  CHECK(s.Get(list).status == 429);
  for (const char* name : {"a", "b", "c"}) s.Call(name, "POST", list, {}, ConfigMap(name));
  REQUIRE(s.answers.size() == 3);
  CHECK(s.answers[0].status == 201);
  CHECK(s.answers[1].status == 201);
  CHECK(s.answers[2].status == 429);
  CHECK(s.store.List(Configmaps(), "default").size() == 2);
}

TEST_CASE("rateLimit errors name the field", "[kubesim][faults]") {
  Faults f;
  auto message = [&](const char* spec) {
    auto r = f.Set(json::parse(spec));
    REQUIRE_FALSE(r);
    return r.error().message;
  };
  CHECK(message(R"({"rateLimit": {"burst": 3}})") == "rateLimit.qps: required");
  CHECK(message(R"({"rateLimit": {"qps": 0}})") == "rateLimit.qps: must be a number > 0");
  CHECK(message(R"({"rateLimit": {"qps": 1, "burst": 0}})") ==
        "rateLimit.burst: must be an integer >= 1");
  CHECK(message(R"({"rateLimit": {"qps": 1, "mutatingBurst": 2}})") ==
        "rateLimit.mutatingBurst: needs mutatingQps");
  CHECK(message(R"({"rateLimit": {"qps": 1, "inflight": 2}})") ==
        "rateLimit: unknown field \"inflight\"");
  CHECK(message(R"({"rulez": []})") == "faults: unknown field \"rulez\"");
  CHECK(message(R"({"rules": [{"action": "delay"}]})") ==
        "rules[0].latencyMs: required by the delay action");
  CHECK(message(R"({"rules": [{"action": "error", "afterSeconds": 1}]})") ==
        "rules[0]: afterEvents and afterSeconds apply to endWatch only");
  CHECK(message(R"({"rules": [{"action": "endWatch", "afterSeconds": -1}]})") ==
        "rules[0].afterSeconds: must be a number from 0 to 86400");
}

TEST_CASE("a delay rule holds the response on a timer, after the request took effect",
          "[kubesim][faults]") {
  Server s;
  REQUIRE(s.api->faults().Set(json::parse(R"({"rules": [
      {"action": "delay", "verb": "create", "resource": "configmaps", "latencyMs": 20, "count": 1},
      {"action": "error", "code": 503, "verb": "get", "resource": "configmaps", "latencyMs": 10, "count": 1},
      {"action": "drop", "verb": "delete", "resource": "configmaps", "latencyMs": 5, "count": 1}]})")));
  const std::string list = "/api/v1/namespaces/default/configmaps";
  s.Call("slow create", "POST", list, {}, ConfigMap("a"));
  // Not answered yet, but done: the latency is on the response.
  CHECK(s.answers.empty());
  CHECK(s.store.Get(Configmaps(), "default", "a"));
  s.Call("list", "GET", list);
  s.Call("slow error", "GET", list + "/a");
  s.Call("slow drop", "DELETE", list + "/a");
  REQUIRE(s.answers.size() == 1);
  CHECK(s.answers[0].label == "list");
  CHECK(s.answers[0].status == 200);
  s.io.run();
  REQUIRE(s.answers.size() == 4);
  // In the order of their timers (5, 10, 20 ms), each with its own answer.
  CHECK(s.answers[1].label == "slow drop");
  CHECK(s.answers[1].status == 0);
  CHECK(s.answers[2].label == "slow error");
  CHECK(s.answers[2].status == 503);
  CHECK(s.answers[3].label == "slow create");
  CHECK(s.answers[3].status == 201);
  CHECK(json::parse(s.answers[3].body)["metadata"]["name"] == "a");
  // The rules are used up: the next create answers at once.
  s.answers.clear();
  s.Call("fast create", "POST", list, {}, ConfigMap("b"));
  REQUIRE(s.answers.size() == 1);
  CHECK(s.answers[0].status == 201);
  json state = s.api->faults().ToJson();
  CHECK(state["rules"][0] ==
        json::parse(R"({"action": "delay", "verb": "create", "resource": "configmaps",
      "latencyMs": 20, "count": 1, "fired": 1})"));
}

}  // namespace
}  // namespace kiln::kubesim
