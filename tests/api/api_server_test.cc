// The REST API through a real HTTP client (http/client.h) against a server in this process:
// the engine and server on an io_context thread, SQLite in a temporary directory, steps as host
// processes. Waiting is on the engine's change notifications or the watch stream, never sleeps.
#include <catch2/catch.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <mutex>
#include <thread>

#include "api/api_server.h"
#include "api/auth.h"
#include "api/engine.h"
#include "api/metrics.h"
#include "http/client.h"
#include "store/sqlite_store.h"

namespace kiln::api {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

struct TempDir {
  std::string path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "kiln-api-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

const char* kHello = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: hello-
  labels: {team: vision}
spec:
  entrypoint: main
  arguments:
    parameters: [{name: who, value: world}]
  templates:
  - name: main
    inputs:
      parameters: [{name: who, value: "{{workflow.parameters.who}}"}]
    outputs:
      parameters: [{name: said, valueFrom: {path: /tmp/said}}]
    container:
      image: alpine
      command: [sh, -c, "echo hello {{inputs.parameters.who}}; echo -n {{inputs.parameters.who}} > /tmp/said"]
)";

const char* kSuspend = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: wait-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - [{name: approve, template: gate}]
    - [{name: after, template: echo}]
  - name: gate
    suspend: {}
  - name: echo
    container: {image: alpine, command: [echo, approved]}
)";

struct ServerHarness {
  TempDir dir;
  std::unique_ptr<store::SqliteStore> db;
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  Metrics metrics;
  std::unique_ptr<Engine> engine;
  std::optional<TokenAuthenticator> auth;
  std::unique_ptr<ApiServer> server;
  std::thread thread;
  http::Endpoint endpoint;

  explicit ServerHarness(std::function<void(ApiServerOptions&)> configure = {}, const std::string& tokens = "",
                         std::function<void(EngineOptions&)> configure_engine = {}) {
    store::SqliteOptions so;
    so.durability = store::Durability::kNormal;
    db = std::move(*store::SqliteStore::Open(dir.path + "/kiln.db", so));
    EngineOptions eo;
    eo.data_dir = dir.path;
    eo.sandbox = false;
    eo.metrics = &metrics;
    if (configure_engine) configure_engine(eo);
    engine = std::move(*Engine::Create(io, *db, eo));
    ApiServerOptions options;
    options.read_threads = 2;
    if (!tokens.empty()) {
      auto a = TokenAuthenticator::Parse("tokens.yaml", tokens);
      REQUIRE(a);
      auth = std::move(*a);
      options.auth = &*auth;
    }
    if (configure) configure(options);
    auto s = ApiServer::Start(io, *engine, *db, metrics, options);
    REQUIRE(s);
    server = std::move(*s);
    endpoint.url = server->url();
    thread = std::thread([this] { io.run(); });
  }
  ~ServerHarness() {
    boost::asio::post(io, [this] {
      server->Stop();
      engine->Shutdown();
      work.reset();
    });
    thread.join();
    server.reset();
  }

  http::ClientResponse Call(const std::string& method, const std::string& target, const std::string& body = "",
                            std::vector<http::Header> headers = {}) {
    auto r = http::Fetch(endpoint, method, target, body, std::move(headers));
    REQUIRE(r);
    return *r;
  }
  Json CallJson(const std::string& method, const std::string& target, const std::string& body = "", int status = 200) {
    http::ClientResponse r = Call(method, target, body);
    INFO(method << " " << target << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == status);
    Json j = Json::parse(r.body, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    return j;
  }
  std::string Submit(const std::string& ns, const std::string& yaml) {
    http::ClientResponse r = Call("POST", "/api/v1/workflows/" + ns, yaml, {{"Content-Type", "application/yaml"}});
    INFO(r.body);
    REQUIRE(r.status == 200);
    return Json::parse(r.body)["metadata"]["name"].get<std::string>();
  }

  // Blocks until workflow `name` reaches a final phase (on the engine's notifications).
  std::string WaitDone(const std::string& ns, const std::string& name) {
    auto done = std::make_shared<std::promise<std::string>>();
    auto fired = std::make_shared<std::atomic<bool>>(false);
    auto finish = [done, fired](const std::string& phase) {
      if (!fired->exchange(true)) done->set_value(phase);
    };
    auto is_final = [](const std::string& p) { return p == "Succeeded" || p == "Failed" || p == "Error"; };
    std::promise<int> subscribed;
    boost::asio::post(io, [&, finish] {
      int id = engine->Subscribe([ns, name, finish, is_final](const store::WorkflowRecord& w, ChangeType) {
        if (w.namespace_ == ns && w.name == name && is_final(w.phase)) finish(w.phase);
      });
      if (auto w = db->FindWorkflow(ns, name); w && *w && is_final((*w)->phase)) finish((*w)->phase);
      subscribed.set_value(id);
    });
    int id = subscribed.get_future().get();
    std::string phase = done->get_future().get();
    boost::asio::post(io, [this, id] { engine->Unsubscribe(id); });
    return phase;
  }
};

TEST_CASE("a workflow submitted as YAML runs, and GET shows every node with outputs", "[api]") {
  ServerHarness h;
  std::string name = h.Submit("ml", kHello);
  CHECK(name.starts_with("hello-"));
  CHECK(h.WaitDone("ml", name) == "Succeeded");
  Json wf = h.CallJson("GET", "/api/v1/workflows/ml/" + name);
  CHECK(wf["metadata"]["namespace"] == "ml");
  CHECK(wf["metadata"]["labels"]["team"] == "vision");
  CHECK(wf["status"]["phase"] == "Succeeded");
  CHECK(wf["status"]["progress"] == "1/1");
  CHECK(wf["spec"]["entrypoint"] == "main");
  REQUIRE(wf["status"]["nodes"].size() == 1);
  const Json& node = wf["status"]["nodes"].begin().value();
  CHECK(node["type"] == "Pod");
  CHECK(node["phase"] == "Succeeded");
  CHECK(node["outputs"]["parameters"][0]["value"] == "world");
  CHECK(node["outputs"]["exitCode"] == "0");
  CHECK(node["inputs"]["parameters"][0]["name"] == "who");
  CHECK_FALSE(node["startedAt"].is_null());

  // The log, from kiln's own copy.
  http::ClientResponse log = h.Call("GET", "/api/v1/workflows/ml/" + name + "/log?nodeId=" + http::UrlEncode(node["id"].get<std::string>()));
  REQUIRE(log.status == 200);
  Json line = Json::parse(log.body.substr(0, log.body.find('\n')));
  CHECK(line["result"]["content"] == "hello world");
  CHECK(line["result"]["podName"] == node["id"]);
  // The step is counted in the metrics.
  std::string m = h.Call("GET", "/metrics").body;
  CHECK(m.find("kiln_steps_total{phase=\"Succeeded\"} 1") != std::string::npos);
  CHECK(m.find("kiln_step_duration_seconds_count{phase=\"Succeeded\"} 1") != std::string::npos);
  CHECK(m.find("kiln_step_scheduling_latency_seconds_count 1") != std::string::npos);
  CHECK(m.find("kiln_workflows_finished_total{phase=\"Succeeded\"} 1") != std::string::npos);
  CHECK(m.find("kiln_workflows{phase=\"Succeeded\"} 1") != std::string::npos);
  CHECK(m.find("kiln_workflows{phase=\"Running\"} 0") != std::string::npos);
  // grep filters lines.
  log = h.Call("GET", "/api/v1/workflows/ml/" + name + "/log?grep=nomatch");
  CHECK(log.status == 200);
  CHECK(log.body.empty());
}

TEST_CASE("answers kept for repeated reads change as soon as the store does, whoever writes it", "[api]") {
  ServerHarness h;
  std::string name = h.Submit("ml", kHello);
  REQUIRE(h.WaitDone("ml", name) == "Succeeded");
  const std::string path = "/api/v1/workflows/ml/" + name;
  std::string first = h.Call("GET", path).body;
  std::string list = h.Call("GET", "/api/v1/workflows/ml").body;
  CHECK(h.Call("GET", path).body == first);
  CHECK(h.Call("GET", "/api/v1/workflows/ml").body == list);

  // Another process (a `kiln run`, a second server) changes the workflow through its own
  // connection to the same database.
  auto other = store::SqliteStore::Open(h.dir.path + "/kiln.db", store::SqliteOptions{});
  REQUIRE(other);
  auto row = (*other)->FindWorkflow("ml", name);
  REQUIRE(row);
  REQUIRE(row->has_value());
  store::Batch batch;
  batch.workflow_upsert = **row;
  batch.workflow_upsert->message = "changed elsewhere";
  REQUIRE((*other)->Apply(batch));
  CHECK(h.CallJson("GET", path)["status"]["message"] == "changed elsewhere");
  Json items = h.CallJson("GET", "/api/v1/workflows/ml")["items"];
  REQUIRE(items.size() == 1);
  CHECK(items[0]["status"]["message"] == "changed elsewhere");
  CHECK_FALSE(items[0]["status"].contains("progress"));  // lists carry no nodes

  // Deleted elsewhere: 404, not the kept answer.
  REQUIRE((*other)->DeleteWorkflow((*row)->uid));
  CHECK(h.Call("GET", path).status == 404);
  CHECK(h.CallJson("GET", "/api/v1/workflows/ml")["items"].empty());
}

TEST_CASE("a workflow submitted as {workflow: ...} JSON takes its namespace from the URL", "[api]") {
  ServerHarness h;
  Json manifest = {{"apiVersion", "argoproj.io/v1alpha1"},
                   {"kind", "Workflow"},
                   {"metadata", {{"name", "fixed-name"}, {"namespace", "elsewhere"}}},
                   {"spec", {{"entrypoint", "main"},
                             {"templates", Json::array({{{"name", "main"}, {"container", {{"image", "alpine"}, {"command", {"true"}}}}}})}}}};
  Json wf = h.CallJson("POST", "/api/v1/workflows/team-a", Json{{"workflow", manifest}}.dump());
  CHECK(wf["metadata"]["name"] == "fixed-name");
  CHECK(wf["metadata"]["namespace"] == "team-a");
  CHECK(h.WaitDone("team-a", "fixed-name") == "Succeeded");
  // The same name again: 409 AlreadyExists.
  Json again = h.CallJson("POST", "/api/v1/workflows/team-a", Json{{"workflow", manifest}}.dump(), 409);
  CHECK(again["code"] == 6);
  // Listing: in its namespace only.
  CHECK(h.CallJson("GET", "/api/v1/workflows/team-a")["items"].size() == 1);
  CHECK(h.CallJson("GET", "/api/v1/workflows/team-b")["items"].empty());
}

TEST_CASE("bad bodies get 400 with what is wrong, and nothing is recorded", "[api]") {
  ServerHarness h;
  SECTION("malformed JSON") {
    Json e = h.CallJson("POST", "/api/v1/workflows/ml", "{\"workflow\": {", 400);
    CHECK(e["code"] == 3);
    CHECK(e["message"].get<std::string>().find("not valid JSON") != std::string::npos);
  }
  SECTION("malformed YAML names the line") {
    http::ClientResponse r = h.Call("POST", "/api/v1/workflows/ml", "kind: Workflow\nspec: [unclosed\n",
                                    {{"Content-Type", "application/yaml"}});
    CHECK(r.status == 400);
    Json e = Json::parse(r.body);
    REQUIRE(e["details"].is_array());
    CHECK(e["details"][0]["line"].get<int>() >= 2);
  }
  SECTION("a manifest with validation errors lists each with its field path and line") {
    std::string bad = std::string(kHello);
    bad.replace(bad.find("entrypoint: main"), 16, "entrypoint: nope");
    http::ClientResponse r = h.Call("POST", "/api/v1/workflows/ml", bad, {{"Content-Type", "application/yaml"}});
    REQUIRE(r.status == 400);
    Json e = Json::parse(r.body);
    REQUIRE(e["details"].size() >= 1);
    CHECK(e["details"][0]["field"] == "spec.entrypoint");
    CHECK(e["details"][0]["line"] == 7);
  }
  SECTION("lint answers the same without recording") {
    http::ClientResponse r = h.Call("POST", "/api/v1/workflows/ml/lint", kHello, {{"Content-Type", "application/yaml"}});
    CHECK(r.status == 200);
    CHECK(Json::parse(r.body)["metadata"]["name"].get<std::string>().starts_with("hello-"));
  }
  CHECK(h.CallJson("GET", "/api/v1/workflows/ml")["items"].empty());
}

TEST_CASE("unknown workflows and paths get 404 JSON", "[api]") {
  ServerHarness h;
  Json e = h.CallJson("GET", "/api/v1/workflows/ml/nope", "", 404);
  CHECK(e["code"] == 5);
  CHECK(e["message"].get<std::string>().find("nope") != std::string::npos);
  CHECK(h.CallJson("PUT", "/api/v1/workflows/ml/nope/stop", "", 404)["code"] == 5);
  CHECK(h.CallJson("DELETE", "/api/v1/workflows/ml/nope", "", 404)["code"] == 5);
  CHECK(h.CallJson("GET", "/api/v2/whatever", "", 404)["code"] == 5);
}

TEST_CASE("bodies over the limit get 413", "[api]") {
  ServerHarness h([](ApiServerOptions& o) { o.http.body_limit = 1024; });
  http::ClientResponse r = h.Call("POST", "/api/v1/workflows/ml", std::string(4096, ' '), {{"Content-Type", "application/yaml"}});
  CHECK(r.status == 413);
  // The server goes on answering.
  CHECK(h.Call("GET", "/healthz").status == 200);
}

TEST_CASE("a client that sends its headers slowly times out and does not block others", "[api]") {
  ServerHarness h([](ApiServerOptions& o) { o.http.read_timeout = std::chrono::seconds(1); });
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket slow(io);
  slow.connect({boost::asio::ip::make_address("127.0.0.1"), h.server->port()});
  boost::asio::write(slow, boost::asio::buffer(std::string("GET /api/v1/workflows/ml HTTP/1.1\r\nHost: x\r\n")));
  // Others are served while the slow one hangs.
  for (int i = 0; i < 5; ++i) CHECK(h.Call("GET", "/api/v1/workflows/ml").status == 200);
  // The slow one is cut off after the read timeout: EOF (or a 408) instead of waiting forever.
  std::string got(256, '\0');
  boost::system::error_code ec;
  size_t n = slow.read_some(boost::asio::buffer(got), ec);
  CHECK((ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset ||
         std::string_view(got.data(), n).find("408") != std::string_view::npos));
}

TEST_CASE("bearer tokens: 401 without or with a wrong token, 403 outside namespaces or role", "[api]") {
  const std::string tokens = R"(
- {token: writer-token-0123456789, subject: ci, namespaces: [ml], role: write}
- {token: reader-token-0123456789, subject: dash, namespaces: ["*"], role: read}
)";
  ServerHarness h({}, tokens);
  auto as = [&](const std::string& token, const std::string& method, const std::string& target, const std::string& body = "") {
    http::Endpoint e = h.endpoint;
    e.token = token;
    auto r = http::Fetch(e, method, target, body, {{"Content-Type", "application/yaml"}});
    REQUIRE(r);
    return *r;
  };
  CHECK(as("", "GET", "/api/v1/workflows/ml").status == 401);
  CHECK(as("wrong-token-0123456789", "GET", "/api/v1/workflows/ml").status == 401);
  CHECK(Json::parse(as("", "GET", "/api/v1/workflows/ml").body)["code"] == 16);
  CHECK(as("writer-token-0123456789", "GET", "/api/v1/workflows/other").status == 403);
  CHECK(as("reader-token-0123456789", "POST", "/api/v1/workflows/ml", kHello).status == 403);
  CHECK(as("reader-token-0123456789", "GET", "/api/v1/workflows/ml").status == 200);
  http::ClientResponse ok = as("writer-token-0123456789", "POST", "/api/v1/workflows/ml", kHello);
  CHECK(ok.status == 200);
  // Health and metrics stay open.
  CHECK(as("", "GET", "/healthz").status == 200);
  http::ClientResponse m = as("", "GET", "/metrics");
  CHECK(m.status == 200);
  // No token ever appears in what the server exposes.
  CHECK(m.body.find("token-0123456789") == std::string::npos);
  CHECK(m.body.find("kiln_api_requests_total{route=\"/api/v1/workflows/{ns}\",method=\"GET\",code=\"401\"}") != std::string::npos);
  h.WaitDone("ml", Json::parse(ok.body)["metadata"]["name"]);
}

TEST_CASE("resume lets a suspended workflow go on; terminate stops a running one", "[api]") {
  ServerHarness h;
  std::string name = h.Submit("ml", kSuspend);
  // Wait (on the watch stream) until the suspend node is running.
  auto watched = http::FetchStream(h.endpoint, "GET", "/api/v1/workflow-events/ml?listOptions.fieldSelector=metadata.name%3D" + name,
                                   [&](std::string_view line) {
                                     Json e = Json::parse(line);
                                     for (const auto& [id, n] : e["result"]["object"]["status"]["nodes"].items()) {
                                       if (n["type"] == "Suspend" && n["phase"] == "Running") return false;
                                     }
                                     return true;
                                   });
  REQUIRE(watched);
  Json resumed = h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/resume");
  CHECK(resumed["metadata"]["name"] == name);
  CHECK(h.WaitDone("ml", name) == "Succeeded");
  // Resuming a finished workflow: 409.
  CHECK(h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/resume", "", 409)["code"] == 9);

  std::string second = h.Submit("ml", kSuspend);
  h.CallJson("PUT", "/api/v1/workflows/ml/" + second + "/terminate");
  CHECK(h.WaitDone("ml", second) == "Failed");
  Json wf = h.CallJson("GET", "/api/v1/workflows/ml/" + second);
  CHECK(wf["status"]["message"].get<std::string>().find("erminated") != std::string::npos);

  // Resubmit: a new workflow from the same manifest.
  Json again = h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/resubmit");
  CHECK(again["metadata"]["name"] != name);
  CHECK(again["metadata"]["labels"]["workflows.argoproj.io/resubmitted-from-workflow"] == name);
  h.CallJson("PUT", "/api/v1/workflows/ml/" + again["metadata"]["name"].get<std::string>() + "/terminate");
  h.WaitDone("ml", again["metadata"]["name"]);
  // Delete removes it.
  h.CallJson("DELETE", "/api/v1/workflows/ml/" + second);
  h.CallJson("GET", "/api/v1/workflows/ml/" + second, "", 404);
}

// Replaces every "DIR" in `yaml` with `dir`.
std::string WithDir(std::string yaml, const std::string& dir) {
  for (size_t at; (at = yaml.find("DIR")) != std::string::npos;) yaml.replace(at, 3, dir);
  return yaml;
}

size_t LinesOf(const std::string& path) {
  std::ifstream in(path);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// Watches workflow `name` until `done(workflow)` says so.
void WatchUntil(ServerHarness& h, const std::string& ns, const std::string& name, const std::function<bool(const Json&)>& done) {
  auto watched = http::FetchStream(h.endpoint, "GET", "/api/v1/workflow-events/" + ns + "?listOptions.fieldSelector=metadata.name%3D" + name,
                                   [&](std::string_view line) { return !done(Json::parse(line)["result"]["object"]); });
  REQUIRE(watched);
}

const Json* NodeNamed(const Json& wf, const std::string& display_name) {
  if (!wf.contains("status") || !wf["status"].contains("nodes")) return nullptr;
  for (const auto& [id, n] : wf["status"]["nodes"].items()) {
    if (n.value("displayName", "") == display_name) return &n;
  }
  return nullptr;
}

// prep counts its runs; train fails until it has run three times (its retryStrategy allows two
// attempts a run); the exit handler counts its runs.
const char* kFlaky = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: flaky}
spec:
  entrypoint: d
  onExit: bye
  arguments:
    parameters: [{name: dir, value: DIR}, {name: need, value: "3"}]
  templates:
  - name: d
    dag:
      tasks:
      - {name: prep, template: count}
      - {name: train, depends: prep, template: fit}
  - name: count
    container: {image: alpine, command: [sh, -c, "echo x >> DIR/prep-runs"]}
  - name: fit
    retryStrategy: {limit: 1}
    container:
      image: alpine
      command: [sh, -c, "echo x >> DIR/train-runs; [ $(wc -l < DIR/train-runs) -ge {{workflow.parameters.need}} ]"]
  - name: bye
    container: {image: alpine, command: [sh, -c, "echo x >> DIR/exit-runs"]}
)";

TEST_CASE("retry runs a failed workflow's failed steps again, in place", "[api][retry]") {
  ServerHarness h;
  const std::string dir = h.dir.path;
  std::string name = h.Submit("ml", WithDir(kFlaky, dir));
  REQUIRE(h.WaitDone("ml", name) == "Failed");
  Json failed = h.CallJson("GET", "/api/v1/workflows/ml/" + name);
  CHECK(LinesOf(dir + "/train-runs") == 2);
  CHECK(failed["status"]["nodes"].contains("flaky.train(1)"));

  // Only a Failed or Error workflow is retried; bad requests are refused before anything runs.
  CHECK(h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/retry", R"({"nodeFieldSelector": "colour=red"})", 400)["message"] ==
        "nodeFieldSelector: unknown field \"colour\"; one of id, name, displayName, templateName, phase, type, "
        "inputs.parameters.NAME.value");
  CHECK(h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/retry", R"({"parameters": ["nope=1"]})", 400)["message"] ==
        "parameters: the workflow declares no parameter \"nope\"");
  CHECK(h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/suspend", "", 409)["message"] ==
        "cannot suspend workflow \"flaky\": the workflow is not running; only a running workflow can be suspended "
        "(phase Failed)");

  Json retried = h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/retry", R"({"name": "flaky", "namespace": "ml"})");
  CHECK(retried["metadata"]["uid"] == failed["metadata"]["uid"]);
  CHECK(retried["status"]["phase"] == "Running");
  CHECK(retried["status"]["finishedAt"].is_null());
  CHECK_FALSE(retried["status"].contains("message"));
  REQUIRE(h.WaitDone("ml", name) == "Succeeded");
  Json wf = h.CallJson("GET", "/api/v1/workflows/ml/" + name);
  // prep succeeded the first time and did not run again; train ran once more (a fresh budget:
  // attempt 0 again, its old attempt 1 gone); the exit handler ran at the end of each run.
  CHECK(LinesOf(dir + "/prep-runs") == 1);
  CHECK(LinesOf(dir + "/train-runs") == 3);
  CHECK(LinesOf(dir + "/exit-runs") == 2);
  CHECK(wf["status"]["nodes"]["flaky.train"]["phase"] == "Succeeded");
  CHECK(wf["status"]["nodes"]["flaky.train(0)"]["phase"] == "Succeeded");
  CHECK_FALSE(wf["status"]["nodes"].contains("flaky.train(1)"));
  CHECK(wf["status"]["nodes"]["flaky.train"]["children"] == Json::array({"flaky.train(0)"}));
  CHECK(wf["status"]["nodes"]["flaky.onExit"]["phase"] == "Succeeded");
  CHECK(wf["metadata"]["uid"] == failed["metadata"]["uid"]);

  // A succeeded workflow is not retried.
  CHECK(h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/retry", "", 409)["message"] ==
        "cannot retry workflow \"flaky\": workflow must be Failed/Error to retry (phase Succeeded)");
}

TEST_CASE("retry with restartSuccessful and parameters", "[api][retry]") {
  ServerHarness h;
  const std::string dir = h.dir.path;
  std::string name = h.Submit("ml", WithDir(kFlaky, dir));
  REQUIRE(h.WaitDone("ml", name) == "Failed");
  // need=4: train must run twice more (attempts 0 and 1); prep is matched and runs again.
  h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/retry",
             R"({"restartSuccessful": true, "nodeFieldSelector": "templateName=count", "parameters": ["need=4"]})");
  REQUIRE(h.WaitDone("ml", name) == "Succeeded");
  CHECK(LinesOf(dir + "/prep-runs") == 2);
  CHECK(LinesOf(dir + "/train-runs") == 4);
  Json wf = h.CallJson("GET", "/api/v1/workflows/ml/" + name);
  CHECK(wf["status"]["nodes"]["flaky.train(1)"]["phase"] == "Succeeded");
}

// A dag whose first step waits for a file the test creates.
const char* kGated = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: gated}
spec:
  entrypoint: d
  templates:
  - name: d
    dag:
      tasks:
      - {name: A, template: gate}
      - {name: B, depends: A, template: work}
  - name: gate
    container: {image: alpine, command: [sh, -c, "while [ ! -e DIR/go ]; do sleep 0.02; done"]}
  - name: work
    container: {image: alpine, command: [sh, -c, "echo x >> DIR/work-runs"]}
)";

TEST_CASE("suspend holds a running dag's next steps until resume", "[api][suspend]") {
  ServerHarness h;
  const std::string dir = h.dir.path;
  std::string name = h.Submit("ml", WithDir(kGated, dir));
  WatchUntil(h, "ml", name, [](const Json& wf) {
    const Json* a = NodeNamed(wf, "A");
    return a && (*a)["phase"] == "Running";
  });
  Json suspended = h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/suspend");
  CHECK(suspended["spec"]["suspend"] == true);
  CHECK(suspended["status"]["phase"] == "Running");
  CHECK(h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/suspend")["spec"]["suspend"] == true);  // again: fine
  // A runs to its end; B becomes ready and waits.
  std::ofstream(dir + "/go").put('x');
  WatchUntil(h, "ml", name, [](const Json& wf) {
    const Json* b = NodeNamed(wf, "B");
    return b && (*b)["phase"] == "Pending" && b->value("message", "") == "waiting: the workflow is suspended";
  });
  Json wf = h.CallJson("GET", "/api/v1/workflows/ml/" + name);
  CHECK(wf["status"]["phase"] == "Running");
  CHECK(NodeNamed(wf, "A") != nullptr);
  CHECK((*NodeNamed(wf, "A"))["phase"] == "Succeeded");
  CHECK(wf["spec"]["suspend"] == true);
  CHECK_FALSE(fs::exists(dir + "/work-runs"));

  Json resumed = h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/resume");
  CHECK_FALSE(resumed["spec"].contains("suspend"));
  REQUIRE(h.WaitDone("ml", name) == "Succeeded");
  CHECK(LinesOf(dir + "/work-runs") == 1);
  // Finished: suspend, resume and retry are refused.
  CHECK(h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/suspend", "", 409)["code"] == 9);
  CHECK(h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/resume", "", 409)["code"] == 9);
  CHECK(h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/retry", "", 409)["code"] == 9);
}

TEST_CASE("resume of a running workflow that is not suspended is refused", "[api][suspend]") {
  ServerHarness h;
  const std::string dir = h.dir.path;
  std::string name = h.Submit("ml", WithDir(kGated, dir));
  std::string message = h.CallJson("PUT", "/api/v1/workflows/ml/" + name + "/resume", "", 409)["message"];
  CHECK(message.starts_with(
      "cannot resume workflow \"gated\": the workflow is not suspended and no node of it waits for a resume (phase "));
  std::ofstream(dir + "/go").put('x');
  REQUIRE(h.WaitDone("ml", name) == "Succeeded");
}

TEST_CASE("a generateName whose suffix meets a taken name draws another, up to 8 tries", "[api]") {
  // Suffixes in the order they are drawn: the second submission meets "wait-aaaaa" once.
  std::vector<std::string> suffixes = {"aaaaa", "aaaaa", "bbbbb"};
  for (int i = 0; i < 9; ++i) suffixes.push_back("ccccc");  // the third's, then the fourth's 8
  std::atomic<size_t> next{0};
  ServerHarness h({}, "", [&](EngineOptions& eo) { eo.name_suffix = [&] { return suffixes.at(next++); }; });
  auto submit = [&] {
    return h.Call("POST", "/api/v1/workflows/ml", kSuspend, {{"Content-Type", "application/yaml"}});
  };
  http::ClientResponse first = submit(), second = submit(), third = submit();
  REQUIRE(first.status == 200);
  REQUIRE(second.status == 200);
  REQUIRE(third.status == 200);
  CHECK(Json::parse(first.body)["metadata"]["name"] == "wait-aaaaa");
  CHECK(Json::parse(second.body)["metadata"]["name"] == "wait-bbbbb");
  CHECK(Json::parse(third.body)["metadata"]["name"] == "wait-ccccc");
  http::ClientResponse fourth = submit();
  INFO(fourth.body);
  CHECK(fourth.status == 409);
  CHECK(Json::parse(fourth.body)["message"] ==
        "workflow \"wait-ccccc\" already exists in namespace \"ml\"; use generateName or another name");
  CHECK(next == suffixes.size());  // 8 tries, not more
  CHECK(h.CallJson("GET", "/api/v1/workflows/ml")["items"].size() == 3);
}

TEST_CASE("1,000 concurrent submissions are all recorded", "[api]") {
  ServerHarness h;
  constexpr int kThreads = 16, kEach = 63;  // 1,008
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::vector<std::string> failures;  // what went wrong, so that a failure says why
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        auto r = http::Fetch(h.endpoint, "POST", "/api/v1/workflows/load", kSuspend, {{"Content-Type", "application/yaml"}});
        if (r && r->status == 200) {
          ++ok;
          continue;
        }
        ++failed;
        std::lock_guard lock(mu);
        failures.push_back(r ? std::to_string(r->status) + " " + r->body : r.error().message());
      }
    });
  }
  for (auto& c : clients) c.join();
  for (const std::string& f : failures) UNSCOPED_INFO("a submission failed: " << f);
  CHECK(failed == 0);
  CHECK(ok == kThreads * kEach);
  // Every one recorded, and listed page by page.
  size_t listed = 0;
  std::string cont;
  for (;;) {
    Json page = h.CallJson("GET", "/api/v1/workflows/load?listOptions.limit=300" + (cont.empty() ? "" : "&listOptions.continue=" + http::UrlEncode(cont)));
    listed += page["items"].size();
    if (!page["metadata"].contains("continue")) break;
    cont = page["metadata"]["continue"];
  }
  CHECK(listed == static_cast<size_t>(kThreads * kEach));
}

TEST_CASE("every operation of the OpenAPI document is routed", "[api]") {
  ServerHarness h;
  Json doc = h.CallJson("GET", "/api/v1/openapi.json");
  CHECK(doc["openapi"] == "3.0.3");
  size_t operations = 0;
  for (const auto& [path, methods] : doc["paths"].items()) {
    std::string target = path;
    for (auto [from, to] : {std::pair<std::string, std::string>{"{ns}", "ml"}, {"{name}", "x"}, {"{node}", "n"}, {"{artifact}", "a"}}) {
      for (size_t at; (at = target.find(from)) != std::string::npos;) target.replace(at, from.size(), to);
    }
    for (const auto& [method, op] : methods.items()) {
      std::string m = method;
      std::transform(m.begin(), m.end(), m.begin(), ::toupper);
      if (path == "/api/v1/workflow-events/{ns}") continue;  // a stream; tested above
      http::ClientResponse r = h.Call(m, target, m == "GET" || m == "DELETE" ? "" : "{}");
      INFO(m << " " << target << " -> " << r.status << " " << r.body);
      CHECK(r.body.find("no such API path") == std::string::npos);
      ++operations;
    }
  }
  CHECK(operations > 20);
}

TEST_CASE("WorkflowTemplates: create, list, get, update, delete, and submit from one", "[api]") {
  ServerHarness h;
  const std::string tmpl = R"({"template": {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
    "metadata": {"name": "greet"},
    "spec": {"entrypoint": "main", "arguments": {"parameters": [{"name": "who", "value": "x"}]},
             "templates": [{"name": "main", "container": {"image": "alpine", "command": ["echo", "{{workflow.parameters.who}}"]}}]}}})";
  Json created = h.CallJson("POST", "/api/v1/workflow-templates/ml", tmpl);
  CHECK(created["metadata"]["name"] == "greet");
  CHECK(h.CallJson("POST", "/api/v1/workflow-templates/ml", tmpl, 409)["code"] == 6);
  CHECK(h.CallJson("GET", "/api/v1/workflow-templates/ml")["items"].size() == 1);
  CHECK(h.CallJson("GET", "/api/v1/workflow-templates/ml/greet")["spec"]["entrypoint"] == "main");
  CHECK(h.CallJson("GET", "/api/v1/workflow-templates/other/greet", "", 404)["code"] == 5);
  h.CallJson("PUT", "/api/v1/workflow-templates/ml/greet", tmpl);
  // A template with an error is refused with its details.
  Json bad = h.CallJson("POST", "/api/v1/workflow-templates/ml",
                        R"({"template": {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": "b"},
                            "spec": {"entrypoint": "missing", "templates": [{"name": "main", "container": {"image": "a"}}]}}})",
                        400);
  CHECK(bad["details"][0]["field"] == "spec.entrypoint");

  Json wf = h.CallJson("POST", "/api/v1/workflows/ml/submit",
                       R"({"resourceKind": "WorkflowTemplate", "resourceName": "greet", "submitOptions": {"parameters": ["who=kiln"]}})");
  std::string name = wf["metadata"]["name"];
  CHECK(name.starts_with("greet-"));
  CHECK(h.WaitDone("ml", name) == "Succeeded");
  Json got = h.CallJson("GET", "/api/v1/workflows/ml/" + name);
  CHECK(got["metadata"]["labels"]["workflows.argoproj.io/workflow-template"] == "greet");
  h.CallJson("DELETE", "/api/v1/workflow-templates/ml/greet");
  CHECK(h.CallJson("GET", "/api/v1/workflow-templates/ml")["items"].empty());
}

}  // namespace
}  // namespace kiln::api
