// kubesim's fault injection, audit log and OpenAPI documents, over the wire: a plain-HTTP
// kubesim child process and a small Beast client, so the bytes checked are the bytes sent.
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/kubesim/test_util.h"

namespace kiln::kubesim::testing {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using nlohmann::json;

constexpr const char* kToken = "faults-test-token";

struct HttpResult {
  bool dropped = false;  // the connection closed before a response
  int status = 0;
  std::string content_type;
  std::string retry_after;
  std::vector<std::string> warnings;
  std::string body;
};

class Client {
 public:
  explicit Client(const Kubesim& sim) {
    std::string config = ReadFile(sim.kubeconfig());
    size_t at = config.find("server: http://127.0.0.1:");
    REQUIRE(at != std::string::npos);
    at += 25;
    port_ = static_cast<uint16_t>(std::stoi(config.substr(at, config.find('\n', at) - at)));
  }

  HttpResult Call(bhttp::verb verb, const std::string& target, const std::string& body = "") const {
    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    stream.connect(
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_));
    stream.expires_after(std::chrono::seconds(20));
    bhttp::request<bhttp::string_body> req{verb, target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    req.set(bhttp::field::authorization, std::string("Bearer ") + kToken);
    req.set(bhttp::field::user_agent, "kubesim-faults-test/1");
    if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    bhttp::write(stream, req);
    beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> res;
    beast::error_code ec;
    bhttp::read(stream, buffer, res, ec);
    HttpResult r;
    if (ec) {
      r.dropped = true;
      return r;
    }
    r.status = static_cast<int>(res.result_int());
    r.content_type = std::string(res[bhttp::field::content_type]);
    r.retry_after = std::string(res[bhttp::field::retry_after]);
    for (const auto& field : res) {
      if (field.name_string() == "Warning") r.warnings.emplace_back(field.value());
    }
    r.body = res.body();
    return r;
  }
  HttpResult Get(const std::string& target) const { return Call(bhttp::verb::get, target); }
  HttpResult Post(const std::string& target, const json& body) const {
    return Call(bhttp::verb::post, target, body.dump());
  }

 private:
  uint16_t port_ = 0;
};

json ConfigMap(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}}},
          {"data", {{"k", "v"}}}};
}

json Job(const std::string& name) {
  return json::parse(R"({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":")" + name +
                     R"("},"spec":{"template":{"spec":{"restartPolicy":"Never",
                     "containers":[{"name":"main","image":"busybox"}]}}}})");
}

std::vector<json> Lines(const std::string& text) {
  std::vector<json> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(json::parse(text.substr(start, end - start)));
    start = end + 1;
  }
  return out;
}

TEST_CASE("fault rules answer 500s and 429s as the apiserver writes them, and drop connections",
          "[kubesim][faults]") {
  Kubesim sim("cpu-only.yaml", {"--plain", "--token", kToken});
  Client client(sim);
  HttpResult set = client.Post("/kubesim/faults", json::parse(R"({"rules":[
      {"action":"error","verb":"create","resource":"jobs","namespace":"default","count":1,
       "message":"etcdserver: request timed out"},
      {"action":"tooManyRequests","verb":"list","resource":"pods","retryAfterSeconds":3,"count":1},
      {"action":"throttle","verb":"get","resource":"namespaces","name":"default","count":1},
      {"action":"drop","verb":"get","resource":"configmaps","count":1},
      {"action":"error","code":503,"retryAfterSeconds":2,"verb":"get","resource":"pods/log","count":1}]})"));
  INFO(set.body << sim.log());
  REQUIRE(set.status == 200);

  HttpResult r = client.Post("/apis/batch/v1/namespaces/default/jobs", Job("a"));
  CHECK(r.status == 500);
  CHECK(json::parse(r.body) == json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},
      "status":"Failure","message":"Internal error occurred: etcdserver: request timed out",
      "reason":"InternalError","details":{"causes":[{"message":"etcdserver: request timed out"}]},
      "code":500})"));
  CHECK(r.retry_after.empty());
  CHECK(client.Post("/apis/batch/v1/namespaces/default/jobs", Job("a")).status == 201);

  r = client.Get("/api/v1/namespaces/default/pods");
  CHECK(r.status == 429);
  CHECK(r.retry_after == "3");
  CHECK(json::parse(r.body) == json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},
      "status":"Failure","message":"Too many requests, please try again later.",
      "reason":"TooManyRequests","details":{"retryAfterSeconds":3},"code":429})"));
  CHECK(client.Get("/api/v1/namespaces/default/pods").status == 200);

  r = client.Get("/api/v1/namespaces/default");
  CHECK(r.status == 429);
  CHECK(r.retry_after == "1");
  CHECK(r.content_type == "text/plain; charset=utf-8");
  CHECK(r.body == "Too many requests, please try again later.\n");
  CHECK(client.Get("/api/v1/namespaces/default").status == 200);

  CHECK(client.Get("/api/v1/namespaces/default/configmaps/x").dropped);
  CHECK(client.Get("/api/v1/namespaces/default/configmaps/x").status == 404);

  r = client.Get("/api/v1/namespaces/default/pods/p/log");
  CHECK(r.status == 503);
  CHECK(r.retry_after == "2");
  CHECK(json::parse(r.body)["reason"] == "ServiceUnavailable");

  json state = json::parse(client.Get("/kubesim/faults").body);
  for (const json& rule : state["rules"]) CHECK(rule["fired"] == 1);
  CHECK(client.Call(bhttp::verb::delete_, "/kubesim/faults").status == 200);
  CHECK(json::parse(client.Get("/kubesim/faults").body)["rules"].empty());

  r = client.Post("/kubesim/faults", json::parse(R"({"rules":[{"action":"explode"}]})"));
  CHECK(r.status == 400);
  CHECK(json::parse(r.body)["message"] ==
        "rules[0].action: must be one of error, throttle, tooManyRequests, drop, endWatch, "
        "expireWatch, delay");
}

TEST_CASE("fault rules cut watches after N events and force 410 Expired", "[kubesim][faults]") {
  Kubesim sim("cpu-only.yaml", {"--plain", "--token", kToken});
  Client client(sim);
  for (const char* name : {"a", "b", "c"}) {
    REQUIRE(client.Post("/api/v1/namespaces/default/configmaps", ConfigMap(name)).status == 201);
  }
  REQUIRE(client
              .Post("/kubesim/faults", json::parse(R"({"rules":[
      {"action":"endWatch","resource":"configmaps","afterEvents":2,"count":1},
      {"action":"expireWatch","resource":"configmaps","count":1}]})"))
              .status == 200);
  // A list is not a watch: the watch-only rules leave it alone.
  HttpResult list = client.Get("/api/v1/namespaces/default/configmaps");
  REQUIRE(list.status == 200);
  std::string rv = json::parse(list.body)["metadata"]["resourceVersion"];

  // The stream ends cleanly (last chunk) after two of the three synthetic ADDED events.
  HttpResult r = client.Get("/api/v1/namespaces/default/configmaps?watch=true");
  REQUIRE(r.status == 200);
  std::vector<json> events = Lines(r.body);
  REQUIRE(events.size() == 2);
  CHECK(events[0]["type"] == "ADDED");
  CHECK(events[1]["object"]["metadata"]["name"] == "b");

  r = client.Get("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=" + rv);
  REQUIRE(r.status == 200);
  events = Lines(r.body);
  REQUIRE(events.size() == 1);
  CHECK(events[0] ==
        json::parse(R"j({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1",
      "metadata":{},"status":"Failure","message":"too old resource version: )j" +
                    rv + " (" + rv + R"j()","reason":"Expired","details":{},"code":410}})j"));
}

TEST_CASE("an endWatch rule with afterSeconds ends the stream cleanly after that time",
          "[kubesim][faults]") {
  Kubesim sim("cpu-only.yaml", {"--plain", "--token", kToken});
  Client client(sim);
  for (const char* name : {"a", "b", "c"}) {
    REQUIRE(client.Post("/api/v1/namespaces/default/configmaps", ConfigMap(name)).status == 201);
  }
  // afterEvents is not reached: the time ends the stream, as a load balancer's idle timeout
  // would. Without the rule this watch (no timeoutSeconds) would run until the client's
  // 20-second deadline and read as dropped.
  REQUIRE(client
              .Post("/kubesim/faults", json::parse(R"({"rules":[
      {"action":"endWatch","resource":"configmaps","afterEvents":100,"afterSeconds":0.2}]})"))
              .status == 200);
  HttpResult r = client.Get("/api/v1/namespaces/default/configmaps?watch=true");
  REQUIRE_FALSE(r.dropped);
  REQUIRE(r.status == 200);
  std::vector<json> events = Lines(r.body);
  REQUIRE(events.size() == 3);
  for (const json& e : events) CHECK(e["type"] == "ADDED");
  json state = json::parse(client.Get("/kubesim/faults").body);
  CHECK(state["rules"][0]["afterSeconds"] == 0.2);
  CHECK(state["rules"][0]["afterEvents"] == 100);
  CHECK(state["rules"][0]["fired"] == 1);
}

TEST_CASE("kubesim --rate-limit answers APF's 429 once the burst is spent", "[kubesim][faults]") {
  // 0.001 QPS: no token comes back during the test, so the count is exact.
  Kubesim sim("cpu-only.yaml", {"--plain", "--token", kToken, "--rate-limit", "0.001:2",
                                "--mutating-rate-limit", "0.001:1"});
  Client client(sim);
  CHECK(client.Get("/api/v1/namespaces/default/configmaps").status == 200);
  CHECK(client.Get("/api/v1/namespaces/default/configmaps").status == 200);
  HttpResult r = client.Get("/api/v1/namespaces/default/configmaps");
  CHECK(r.status == 429);
  CHECK(r.content_type == "text/plain; charset=utf-8");
  CHECK(r.retry_after == "1");
  CHECK(r.body == "Too many requests, please try again later.\n");
  CHECK(client.Post("/api/v1/namespaces/default/configmaps", ConfigMap("a")).status == 201);
  CHECK(client.Post("/api/v1/namespaces/default/configmaps", ConfigMap("b")).status == 429);
  CHECK(client.Get("/healthz").status == 200);
  json state = json::parse(client.Get("/kubesim/faults").body);
  CHECK(state["rateLimit"] ==
        json::parse(R"({"qps":0.001,"burst":2,"mutatingQps":0.001,"mutatingBurst":1})"));
}

TEST_CASE("kubesim rejects a bad --rate-limit", "[kubesim][faults]") {
  TempDir dir;
  CommandResult r = Run({KUBESIM_BINARY, "--cluster",
                         std::string(KILN_SOURCE_DIR) + "/tests/kubesim/clusters/cpu-only.yaml",
                         "--write-kubeconfig", dir / "kubeconfig", "--rate-limit", "fast"},
                        dir.path());
  CHECK(r.exit_code == 2);
  CHECK(r.output ==
        "kubesim: --rate-limit: must be QPS[:BURST] with QPS > 0 and BURST >= 1, got \"fast\"\n");
}

TEST_CASE("POST /kubesim/nodes/NAME/notready and /ready flip a node's status and taints",
          "[kubesim][faults]") {
  Kubesim sim("cpu-only.yaml", {"--plain", "--token", kToken});
  Client client(sim);
  HttpResult r = client.Post("/kubesim/nodes/cpu-1/notready", json::object());
  REQUIRE(r.status == 200);
  json node = json::parse(r.body);
  CHECK(node["metadata"]["name"] == "cpu-1");
  for (const json& c : node["status"]["conditions"]) {
    CHECK(c["status"] == "Unknown");
    CHECK(c["reason"] == "NodeStatusUnknown");
    CHECK(c["message"] == "Kubelet stopped posting node status.");
  }
  REQUIRE(node["spec"]["taints"].size() == 2);
  CHECK(node["spec"]["taints"][0] ==
        json::parse(R"({"key":"node.kubernetes.io/unreachable","effect":"NoSchedule"})"));
  CHECK(node["spec"]["taints"][1]["effect"] == "NoExecute");
  CHECK(node["spec"]["taints"][1].contains("timeAdded"));
  // What clients see on the Node afterwards.
  CHECK(json::parse(client.Get("/api/v1/nodes/cpu-1").body)["spec"]["taints"] ==
        node["spec"]["taints"]);

  r = client.Post("/kubesim/nodes/cpu-1/ready", json::object());
  REQUIRE(r.status == 200);
  node = json::parse(r.body);
  CHECK_FALSE(node["spec"].contains("taints"));
  bool ready = false;
  for (const json& c : node["status"]["conditions"]) {
    if (c["type"] == "Ready") ready = c["status"] == "True" && c["reason"] == "KubeletReady";
  }
  CHECK(ready);

  r = client.Post("/kubesim/nodes/nope/notready", json::object());
  CHECK(r.status == 404);
  CHECK(json::parse(r.body)["message"] == "nodes \"nope\" not found");
  CHECK(client.Post("/kubesim/nodes/cpu-1/reboot", json::object()).status == 404);
  CHECK(client.Get("/kubesim/nodes/cpu-1/notready").status == 405);
}

TEST_CASE("probabilistic fault rules replay the same way for the same seed", "[kubesim][faults]") {
  Kubesim sim("cpu-only.yaml", {"--plain", "--token", kToken});
  Client client(sim);
  json rules = json::parse(R"({"seed":42,"rules":[
      {"action":"error","verb":"get","resource":"namespaces","probability":0.5}]})");
  auto pattern = [&] {
    REQUIRE(client.Post("/kubesim/faults", rules).status == 200);
    std::string codes;
    for (int i = 0; i < 24; ++i) {
      codes += client.Get("/api/v1/namespaces/default").status == 500 ? 'x' : '.';
    }
    return codes;
  };
  std::string first = pattern();
  CHECK(pattern() == first);
  CHECK(first.find('x') != std::string::npos);
  CHECK(first.find('.') != std::string::npos);
}

TEST_CASE("kubesim --faults loads rules at start", "[kubesim][faults]") {
  TempDir dir;
  WriteFile(dir / "faults.json",
            R"({"rules":[{"action":"error","verb":"list","resource":"nodes","count":1}]})");
  Kubesim sim("cpu-only.yaml", {"--plain", "--token", kToken, "--faults", dir / "faults.json"});
  Client client(sim);
  CHECK(client.Get("/api/v1/nodes").status == 500);
  CHECK(client.Get("/api/v1/nodes").status == 200);
}

TEST_CASE("kubesim --audit-log writes one Metadata-level audit Event per request", "[kubesim][audit]") {
  TempDir dir;
  std::string path = dir / "audit.log";
  Kubesim sim("cpu-only.yaml", {"--plain", "--token", kToken, "--audit-log", path});
  Client client(sim);
  REQUIRE(client.Post("/apis/batch/v1/namespaces/default/jobs", Job("audited")).status == 201);
  REQUIRE(client.Get("/apis/batch/v1/namespaces/default/jobs/missing").status == 404);
  REQUIRE(client.Get("/version").status == 200);
  std::vector<json> events = Lines(ReadFile(path));
  REQUIRE(events.size() == 3);
  const json& create = events[0];
  CHECK(create["kind"] == "Event");
  CHECK(create["apiVersion"] == "audit.k8s.io/v1");
  CHECK(create["level"] == "Metadata");
  CHECK(create["stage"] == "ResponseComplete");
  CHECK(create["verb"] == "create");
  CHECK(create["requestURI"] == "/apis/batch/v1/namespaces/default/jobs");
  CHECK(create["user"]["username"] == "kubesim-admin");
  CHECK(create["sourceIPs"] == json::array({"127.0.0.1"}));
  CHECK(create["userAgent"] == "kubesim-faults-test/1");
  CHECK(create["objectRef"] == json::parse(R"({"resource":"jobs","namespace":"default",
      "name":"audited","apiGroup":"batch","apiVersion":"v1"})"));
  CHECK(create["responseStatus"]["code"] == 201);
  CHECK(create["requestReceivedTimestamp"].get<std::string>().size() == 27);
  CHECK(create["stageTimestamp"].get<std::string>() >=
        create["requestReceivedTimestamp"].get<std::string>());
  CHECK(create["annotations"]["kubesim.kiln.dev/latency"].get<std::string>().ends_with("ms"));
  CHECK(events[1]["verb"] == "get");
  CHECK(events[1]["objectRef"]["name"] == "missing");
  CHECK(events[1]["responseStatus"]["code"] == 404);
  CHECK(events[2]["verb"] == "get");
  CHECK_FALSE(events[2].contains("objectRef"));
  CHECK(events[2]["requestURI"] == "/version");
}

TEST_CASE("/openapi/v3 lists the group-versions and their documents name the kinds",
          "[kubesim][openapi]") {
  Kubesim sim("cpu-only.yaml", {"--plain", "--token", kToken});
  Client client(sim);
  HttpResult r = client.Get("/openapi/v3");
  REQUIRE(r.status == 200);
  json index = json::parse(r.body);
  REQUIRE(index["paths"].contains("apis/batch/v1"));
  REQUIRE(index["paths"].contains("api/v1"));
  REQUIRE(index["paths"].contains("apis/coordination.k8s.io/v1"));
  std::string url = index["paths"]["apis/batch/v1"]["serverRelativeURL"];
  CHECK(url.starts_with("/openapi/v3/apis/batch/v1?hash="));
  r = client.Get(url);
  REQUIRE(r.status == 200);
  json doc = json::parse(r.body);
  const json& patch = doc["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs/{name}"]["patch"];
  CHECK(patch["x-kubernetes-group-version-kind"] ==
        json::parse(R"({"group":"batch","kind":"Job","version":"v1"})"));
  bool field_validation = false;
  for (const json& p : patch["parameters"]) field_validation |= p["name"] == "fieldValidation";
  CHECK(field_validation);
  CHECK(
      doc["components"]["schemas"]["io.k8s.api.batch.v1.Job"]["x-kubernetes-group-version-kind"] ==
      json::parse(R"([{"group":"batch","kind":"Job","version":"v1"}])"));
  CHECK(client.Get("/openapi/v3/apis/nope/v1").status == 404);
}

TEST_CASE("unknown fields are dropped with a warning, or rejected under fieldValidation=Strict",
          "[kubesim][openapi]") {
  Kubesim sim("cpu-only.yaml", {"--plain", "--token", kToken});
  Client client(sim);
  json job = Job("typo");
  job["spec"]["backofLimit"] = 2;
  job["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Never";
  HttpResult r = client.Post("/apis/batch/v1/namespaces/default/jobs?fieldValidation=Strict", job);
  CHECK(r.status == 400);
  CHECK(json::parse(r.body) == json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},
      "status":"Failure","message":"Job in version \"v1\" cannot be handled as a Job: strict decoding error: unknown field \"spec.backofLimit\", unknown field \"spec.template.spec.containers[0].imagePullPolice\"",
      "reason":"BadRequest","details":{},"code":400})"));
  r = client.Post("/apis/batch/v1/namespaces/default/jobs", job);
  CHECK(r.status == 201);
  CHECK(r.warnings ==
        std::vector<std::string>{
            "299 - \"unknown field \\\"spec.backofLimit\\\"\"",
            "299 - \"unknown field \\\"spec.template.spec.containers[0].imagePullPolice\\\"\""});
  json stored = json::parse(r.body);
  CHECK_FALSE(stored["spec"].contains("backofLimit"));
  CHECK(stored["spec"]["backoffLimit"] == 6);
}

}  // namespace
}  // namespace kiln::kubesim::testing
