// The log endpoint of a kiln server whose steps run as Kubernetes Jobs on a kubesim: lines from
// the live pod while a step runs, from kiln's own copy after it ends (also once the Job and pod
// are gone), and a copy that says why when the pod's log could not be read. The engine and server
// run on an io_context thread; waiting is on the engine's change notifications, the log stream
// and kubesim's pods, never on sleeps.
#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/api_server.h"
#include "api/engine.h"
#include "api/metrics.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "store/sqlite_store.h"
#include "tests/kubesim/test_util.h"

namespace kiln::api {
namespace {

using Json = nlohmann::json;
using kubesim::testing::Kubesim;
using kubesim::testing::TempDir;

// A kiln server with --executor kubernetes against `sim` (and --ttl-seconds-after-finished `ttl`
// when given), and a Kubernetes client for the test's own look at the cluster.
struct KubeServer {
  TempDir dir;
  std::unique_ptr<store::SqliteStore> db;
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  Metrics metrics;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<ApiServer> server;
  std::thread thread;
  http::Endpoint endpoint;
  boost::asio::io_context kube_io;  // the test's client, run by Kube() only
  std::unique_ptr<kube::Client> kube;

  explicit KubeServer(const Kubesim& sim, std::optional<int64_t> ttl = std::nullopt) {
    store::SqliteOptions so;
    so.durability = store::Durability::kNormal;
    db = std::move(*store::SqliteStore::Open(dir / "kiln.db", so));
    EngineOptions eo;
    eo.data_dir = dir.path();
    eo.executor = "kubernetes";
    eo.kubeconfig = sim.kubeconfig();
    eo.kube_namespace = "default";
    eo.ttl_seconds_after_finished = ttl;
    eo.metrics = &metrics;
    auto e = Engine::Create(io, *db, eo);
    REQUIRE(e);
    engine = std::move(*e);
    ApiServerOptions options;
    options.read_threads = 2;
    auto s = ApiServer::Start(io, *engine, *db, metrics, options);
    REQUIRE(s);
    server = std::move(*s);
    endpoint.url = server->url();
    thread = std::thread([this] { io.run(); });
    auto config = kube::LoadKubeconfig(sim.kubeconfig());
    REQUIRE(config);
    auto client = kube::Client::Create(kube_io, *config);
    REQUIRE(client);
    kube = std::move(*client);
  }
  ~KubeServer() {
    boost::asio::post(io, [this] {
      server->Stop();
      engine->Shutdown();
      work.reset();
    });
    thread.join();
    server.reset();
  }

  // A blocking Kubernetes API call.
  kube::ApiResponse Kube(const std::string& method, const std::string& target,
                         std::optional<Json> body = std::nullopt) {
    std::optional<Result<kube::ApiResponse>> out;
    boost::asio::co_spawn(
        kube_io, [&]() -> boost::asio::awaitable<void> { out = co_await kube->Call(method, target, body); },
        boost::asio::detached);
    kube_io.restart();
    while (!out) kube_io.run_one();
    REQUIRE(out->has_value());
    return **out;
  }
  std::vector<Json> PodsOf(const std::string& job) {
    kube::ApiResponse r =
        Kube("GET", "/api/v1/namespaces/default/pods?labelSelector=" + kube::UrlEncode("job-name=" + job));
    REQUIRE(r.status == 200);
    return std::vector<Json>(r.body["items"].begin(), r.body["items"].end());
  }

  std::string Submit(const std::string& yaml) {
    auto r = http::Fetch(endpoint, "POST", "/api/v1/workflows/default", yaml, {{"Content-Type", "application/yaml"}});
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    return Json::parse(r->body)["metadata"]["name"].get<std::string>();
  }
  Json Get(const std::string& name) {
    auto r = http::Fetch(endpoint, "GET", "/api/v1/workflows/default/" + name);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return Json::parse(r->body);
  }
  // The workflow's one Pod node.
  Json PodNode(const std::string& name) {
    const Json w = Get(name);  // named: a range-for over a temporary's items() dangles
    for (const auto& [id, n] : w["status"]["nodes"].items()) {
      if (n["type"] == "Pod") return n;
    }
    FAIL("workflow " << name << " has no Pod node: " << w.dump());
    return {};
  }
  // The log endpoint's lines, as {content, podName} results.
  std::vector<Json> Log(const std::string& name, const std::string& query = "") {
    auto r = http::Fetch(endpoint, "GET", "/api/v1/workflows/default/" + name + "/log" + query);
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    std::vector<Json> out;
    for (size_t start = 0, nl; (nl = r->body.find('\n', start)) != std::string::npos; start = nl + 1) {
      out.push_back(Json::parse(r->body.substr(start, nl - start))["result"]);
    }
    return out;
  }

  // Blocks until `done(workflow record, its nodes)` holds, checked on every recorded change.
  void WaitFor(const std::string& name,
               std::function<bool(const store::WorkflowRecord&, const std::vector<store::NodeRecord>&)> done) {
    auto promise = std::make_shared<std::promise<void>>();
    auto fired = std::make_shared<std::atomic<bool>>(false);
    // Runs on the io_context thread only; once fired, `done` (which may refer to the caller's
    // stack) is never called again.
    auto check = [this, name, done, promise, fired] {
      if (fired->load()) return;
      auto w = db->FindWorkflow("default", name);
      if (!w || !*w) return;
      auto nodes = db->ListNodes((*w)->uid);
      if (nodes && done(**w, *nodes) && !fired->exchange(true)) promise->set_value();
    };
    std::promise<int> subscribed;
    boost::asio::post(io, [&, check] {
      int id = engine->Subscribe([check](const store::WorkflowRecord&, ChangeType) { check(); });
      check();
      subscribed.set_value(id);
    });
    int id = subscribed.get_future().get();
    promise->get_future().get();
    boost::asio::post(io, [this, id] { engine->Unsubscribe(id); });
  }
  std::string WaitDone(const std::string& name) {
    std::string phase;
    WaitFor(name, [&phase](const store::WorkflowRecord& w, const std::vector<store::NodeRecord>&) {
      if (w.phase != "Succeeded" && w.phase != "Failed" && w.phase != "Error") return false;
      phase = w.phase;
      return true;
    });
    return phase;
  }
};

std::string Workflow(const std::string& name, const std::string& annotations) {
  return "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: " + name +
         "}\nspec:\n  entrypoint: main\n  templates:\n  - name: main\n    metadata: {annotations: " + annotations +
         "}\n    container: {image: busybox, command: [sh, -c, 'echo hi']}\n";
}

std::vector<std::string> Contents(const std::vector<Json>& results) {
  std::vector<std::string> out;
  for (const Json& r : results) out.push_back(r["content"].get<std::string>());
  return out;
}

}  // namespace

TEST_CASE("a Kubernetes step's log is kiln's copy after it ends, also once its Job and pod are deleted",
          "[api][kubernetes][kubesim]") {
  Kubesim sim("cpu-only.yaml");
  KubeServer h(sim);
  std::string name = h.Submit(Workflow("copied", R"({"kubesim.kiln.dev/logs": "alpha\nbeta\ngamma"})"));
  REQUIRE(h.WaitDone(name) == "Succeeded");
  Json node = h.PodNode(name);
  const std::string job = node["podName"].get<std::string>();
  const std::string node_query = "?nodeId=" + http::UrlEncode(node["id"].get<std::string>());

  std::vector<Json> lines = h.Log(name, node_query);
  CHECK(Contents(lines) == std::vector<std::string>{"alpha", "beta", "gamma"});
  for (const Json& l : lines) CHECK(l["podName"] == job);
  CHECK(Contents(h.Log(name, node_query + "&grep=^b")) == std::vector<std::string>{"beta"});
  // The copy is in the local executor's format, where `kiln logs` reads.
  std::string copy = kubesim::testing::ReadFile(h.engine->LogPath(h.Get(name)["metadata"]["uid"], node["id"]));
  CHECK(copy.find(" stdout alpha\n") != std::string::npos);

  // The Job and its pod go away (Background propagation deletes the pod with the Job).
  REQUIRE(h.PodsOf(job).size() == 1);
  kube::ApiResponse deleted =
      h.Kube("DELETE", "/apis/batch/v1/namespaces/default/jobs/" + job,
             Json{{"kind", "DeleteOptions"}, {"apiVersion", "v1"}, {"propagationPolicy", "Background"}});
  REQUIRE(deleted.status == 200);
  CHECK(h.Kube("GET", "/apis/batch/v1/namespaces/default/jobs/" + job).status == 404);
  CHECK(h.PodsOf(job).empty());
  CHECK(Contents(h.Log(name, node_query)) == std::vector<std::string>{"alpha", "beta", "gamma"});
  CHECK(Contents(h.Log(name)) == std::vector<std::string>{"alpha", "beta", "gamma"});
}

TEST_CASE("follow streams a running Kubernetes step's lines from its pod and ends when the step ends",
          "[api][kubernetes][kubesim]") {
  Kubesim sim("cpu-only.yaml");
  KubeServer h(sim);
  // One line at the start, the next two spread over an hour: the step runs until the test ends
  // it through the pod's exit-now annotation, which writes the rest of the log first.
  std::string name = h.Submit(Workflow("followed", R"({"kubesim.kiln.dev/logs": "one\ntwo\nthree",
                                                       "kubesim.kiln.dev/duration": "1h"})"));
  h.WaitFor(name, [](const store::WorkflowRecord&, const std::vector<store::NodeRecord>& nodes) {
    for (const store::NodeRecord& n : nodes) {
      if (n.type == "Pod" && n.phase == "Running") return true;
    }
    return false;
  });
  Json node = h.PodNode(name);
  const std::string job = node["podName"].get<std::string>();
  const std::string node_query = "?nodeId=" + http::UrlEncode(node["id"].get<std::string>());

  // Without follow: what the pod has written so far.
  std::vector<Json> so_far = h.Log(name, node_query);
  CHECK(Contents(so_far) == std::vector<std::string>{"one"});
  REQUIRE(so_far.size() == 1);
  CHECK(so_far[0]["podName"] == job);

  std::vector<Json> pods = h.PodsOf(job);
  REQUIRE(pods.size() == 1);
  const std::string pod = pods[0]["metadata"]["name"].get<std::string>();
  std::vector<std::string> streamed;
  bool running_at_first_line = false;
  auto status = http::FetchStream(
      h.endpoint, "GET", "/api/v1/workflows/default/" + name + "/log" + node_query + "&follow=true",
      [&](std::string_view line) {
        if (line.empty()) return true;
        streamed.push_back(Json::parse(line)["result"]["content"].get<std::string>());
        if (streamed.size() == 1) {
          // The first line came from the live pod: the step is still running.
          auto w = h.db->FindWorkflow("default", name);
          running_at_first_line = w && *w && (*w)->phase == "Running";
          kube::ApiResponse patched =
              h.Kube("PATCH", "/api/v1/namespaces/default/pods/" + pod,
                     Json{{"metadata", {{"annotations", {{"kubesim.kiln.dev/exit-now", "true"}}}}}});
          CHECK(patched.status == 200);
        }
        return true;
      });
  REQUIRE(status);
  CHECK(*status == 200);
  CHECK(running_at_first_line);
  // Every line once, the live ones and nothing again from the copy.
  CHECK(streamed == std::vector<std::string>{"one", "two", "three"});
  // The stream ended with the step: it is recorded as finished.
  auto w = h.db->FindWorkflow("default", name);
  REQUIRE(w);
  REQUIRE(*w);
  auto nodes = h.db->ListNodes((*w)->uid);
  REQUIRE(nodes);
  for (const store::NodeRecord& n : *nodes) {
    if (n.id == node["id"]) CHECK(n.phase == "Succeeded");
  }
  CHECK(h.WaitDone(name) == "Succeeded");
  CHECK(Contents(h.Log(name, node_query)) == std::vector<std::string>{"one", "two", "three"});
}

TEST_CASE("a pod log that cannot be read does not fail the step, and kiln's copy says why",
          "[api][kubernetes][kubesim]") {
  TempDir faults_dir;
  kubesim::testing::WriteFile(faults_dir / "faults.json", R"({"rules": [
      {"action": "error", "code": 500, "verb": "get", "resource": "pods/log",
       "message": "the container runtime is unreachable"}]})");
  Kubesim sim("cpu-only.yaml", {"--faults", faults_dir / "faults.json"});
  KubeServer h(sim);
  std::string name = h.Submit(Workflow("unreadable", R"({"kubesim.kiln.dev/logs": "lost"})"));
  REQUIRE(h.WaitDone(name) == "Succeeded");
  Json node = h.PodNode(name);
  CHECK(node["phase"] == "Succeeded");
  std::vector<Json> lines = h.Log(name);
  REQUIRE(lines.size() == 1);
  std::string text = lines[0]["content"];
  INFO(text);
  CHECK(text.starts_with("no log: cannot read the log of pod " + node["podName"].get<std::string>() + "-"));
  CHECK(text.find(": 500 Internal error occurred: the container runtime is unreachable") != std::string::npos);
}

TEST_CASE("kiln server --ttl-seconds-after-finished puts the TTL on its Jobs", "[api][kubernetes][kubesim]") {
  Kubesim sim("cpu-only.yaml");
  KubeServer h(sim, 3600);
  std::string name = h.Submit(Workflow("with-ttl", R"({"kubesim.kiln.dev/logs": "done"})"));
  REQUIRE(h.WaitDone(name) == "Succeeded");
  const std::string job = h.PodNode(name)["podName"].get<std::string>();
  kube::ApiResponse r = h.Kube("GET", "/apis/batch/v1/namespaces/default/jobs/" + job);
  REQUIRE(r.status == 200);
  CHECK(r.body["spec"].value("ttlSecondsAfterFinished", -1) == 3600);
}

TEST_CASE("kiln server without --ttl-seconds-after-finished leaves its Jobs without a TTL", "[api][kubernetes][kubesim]") {
  Kubesim sim("cpu-only.yaml");
  KubeServer h(sim);
  std::string name = h.Submit(Workflow("no-ttl", R"({"kubesim.kiln.dev/logs": "done"})"));
  REQUIRE(h.WaitDone(name) == "Succeeded");
  const std::string job = h.PodNode(name)["podName"].get<std::string>();
  kube::ApiResponse r = h.Kube("GET", "/apis/batch/v1/namespaces/default/jobs/" + job);
  REQUIRE(r.status == 200);
  CHECK_FALSE(r.body["spec"].contains("ttlSecondsAfterFinished"));
}

}  // namespace kiln::api

namespace kiln::api {

TEST_CASE("deleting a finished workflow deletes its Jobs and their pods", "[api][kubernetes][kubesim]") {
  Kubesim sim("cpu-only.yaml");
  KubeServer h(sim);
  std::string name = h.Submit(R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: doomed}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: echo}
      - {name: b, template: echo}
  - name: echo
    container: {image: busybox, command: [echo, hi]}
)");
  REQUIRE(h.WaitDone(name) == "Succeeded");
  const std::string uid = h.Get(name)["metadata"]["uid"];
  const std::string selector = "kiln.dev/workflow-uid=" + uid;
  kube::ApiResponse jobs =
      h.Kube("GET", "/apis/batch/v1/namespaces/default/jobs?labelSelector=" + kube::UrlEncode(selector));
  REQUIRE(jobs.status == 200);
  REQUIRE(jobs.body["items"].size() == 2);

  // Watch them go: the DELETED events of both Jobs and both pods.
  int deleted = 0;
  auto on_job = [&deleted](const kube::WatchEvent& e) { deleted += e.type == "DELETED" ? 1 : 0; };
  int listed = 0;
  auto on_list = [&listed](const std::vector<std::string>& names) { listed += static_cast<int>(names.size()); };
  auto job_watch = h.kube->StartWatch("/apis/batch/v1/namespaces/default/jobs", selector, on_job, on_list);
  auto pod_watch = h.kube->StartWatch("/api/v1/namespaces/default/pods", selector, on_job, on_list);
  boost::asio::steady_timer bound(h.kube_io, std::chrono::seconds(30));  // a failure bound, not a wait
  bool timed_out = false;
  bound.async_wait([&timed_out](boost::system::error_code ec) { timed_out = !ec; });
  h.kube_io.restart();
  while (listed < 4 && !timed_out) h.kube_io.run_one();  // both watches have listed
  REQUIRE(listed == 4);
  auto r = http::Fetch(h.endpoint, "DELETE", "/api/v1/workflows/default/" + name);
  REQUIRE(r);
  CHECK(r->status == 200);
  while (deleted < 4 && !timed_out) h.kube_io.run_one();
  job_watch->Stop();
  pod_watch->Stop();
  CHECK(deleted == 4);
  jobs = h.Kube("GET", "/apis/batch/v1/namespaces/default/jobs?labelSelector=" + kube::UrlEncode(selector));
  CHECK(jobs.body["items"].empty());
}

}  // namespace kiln::api
