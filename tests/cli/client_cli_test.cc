// The kiln binary as a client of a kiln server: submit, list, get, logs, watch, stop and the
// other actions, against a fake server (an http::Server on port 0 in the test, answering canned
// Argo JSON and recording the requests). The real server is tested in tests/api.
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/router.h"
#include "http/server.h"
#include "tests/cli/cli_util.h"
#include "tests/http/server_thread.h"

namespace {

using kiln::http::Request;
using kiln::http::Responder;
using kiln::http::Response;
using kiln::testing::ClosedPort;
using kiln::testing::Kiln;
using kiln::testing::KilnRun;
using kiln::testing::ServerThread;
using kiln::testing::TempDir;
using nlohmann::json;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The environment of every run: no server or token from the test's own environment, an empty
// HOME (so no config file unless the test writes one), and UTC for the times kiln get prints.
std::string CleanEnv(const TempDir& home) {
  return "HOME=" + home.path.string() +
         " XDG_CONFIG_HOME= KILN_SERVER= KILN_TOKEN= KILN_DATA_DIR= TZ=UTC";
}

// A failed DAG: a root with two steps, the first with an output parameter and artifact.
const char* kTrainJson = R"({
  "metadata": {"name": "train-x7", "namespace": "default", "uid": "u-1",
               "creationTimestamp": "2026-11-24T08:00:00Z", "labels": {"team": "vision"}},
  "spec": {"entrypoint": "main", "arguments": {"parameters": [{"name": "lr", "value": "0.1"}]}},
  "status": {"phase": "Failed", "startedAt": "2026-11-24T08:00:00Z",
             "finishedAt": "2026-11-24T08:01:05Z", "message": "child failed",
    "nodes": {
      "train-x7": {"id": "train-x7", "name": "train-x7", "displayName": "train-x7", "type": "DAG",
                   "templateName": "main", "phase": "Failed",
                   "children": ["train-x7-2", "train-x7-1"],
                   "startedAt": "2026-11-24T08:00:00Z", "finishedAt": "2026-11-24T08:01:05Z"},
      "train-x7-1": {"id": "train-x7-1", "name": "train-x7.prep", "displayName": "prep",
                     "type": "Pod", "templateName": "prep", "phase": "Succeeded",
                     "boundaryID": "train-x7", "startedAt": "2026-11-24T08:00:01Z",
                     "finishedAt": "2026-11-24T08:00:03.5Z",
                     "outputs": {"parameters": [{"name": "rows", "value": "42"}],
                                 "artifacts": [{"name": "data", "uri": "file:///a/data",
                                                "digest": "sha256:abc", "size": 3}],
                                 "exitCode": "0"}},
      "train-x7-2": {"id": "train-x7-2", "name": "train-x7.fit", "displayName": "fit",
                     "type": "Pod", "templateName": "fit", "phase": "Failed",
                     "boundaryID": "train-x7", "startedAt": "2026-11-24T08:00:04Z",
                     "finishedAt": "2026-11-24T08:01:05Z", "outputs": {"exitCode": "3"}}}}})";

json Workflow(const std::string& name, const std::string& phase) {
  return {{"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}}},
          {"status", {{"phase", phase}, {"startedAt", "2026-11-24T08:00:00Z"}}}};
}

// A fake kiln server: canned answers for the routes the CLI uses.
class FakeServer {
 public:
  explicit FakeServer(kiln::http::ServerOptions options = {})
      : server_(Routes(), std::move(options)) {}

  const std::string& url() const { return server_.url(); }
  std::vector<Request> requests() const { return server_.requests(); }

  // Workflow-events stream lines for the next watch ("" ends the stream there).
  std::vector<std::string> events;
  // What GET of a workflow returns, by name (kTrainJson for train-x7 unless replaced).
  std::map<std::string, json> workflows = {{"train-x7", json::parse(kTrainJson)}};
  // The answer to POST /api/v1/workflows/{ns}.
  Response created = Response::Json(200, Workflow("hello-x7k2p", "Pending").dump());

 private:
  kiln::http::Handler Routes() {
    kiln::http::Router router;
    router.Add("POST", "/api/v1/workflows/{ns}", [this](Request, Responder r) { r.Send(created); });
    router.Add("GET", "/api/v1/workflows/{ns}", [](Request req, Responder r) {
      // Three workflows in pages of two.
      json page;
      std::string token(req.GetQuery("listOptions.continue").value_or(""));
      if (token.empty()) {
        page = {{"metadata", {{"continue", "tok-1"}}},
                {"items", {Workflow("c-3", "Running"), Workflow("b-2", "Succeeded")}}};
      } else if (token == "tok-1") {
        page = {{"metadata", json::object()}, {"items", {Workflow("a-1", "Failed")}}};
      } else {
        return r.Send(Response::Json(400, R"({"code":3,"message":"bad continue token"})"));
      }
      r.Send(Response::Json(200, page.dump()));
    });
    router.Add("GET", "/api/v1/workflows/{ns}/{name}/log", [this](Request req, Responder r) {
      auto stream = r.Stream(200, {{"Content-Type", "application/json"}});
      server_.Keep(stream);
      std::string node(req.GetQuery("nodeId").value_or(""));
      if (node.empty() || node == "train-x7-1") {
        stream->Write(R"({"result":{"content":"hello","podName":"train-x7-1"}})"
                      "\n");
      }
      if (node.empty() || node == "train-x7-2") {
        stream->Write(R"({"result":{"content":"fitting","podName":"train-x7-2"}})"
                      "\n");
      }
      stream->Finish();
    });
    router.Add("GET", "/api/v1/workflows/{ns}/{name}", [this](Request req, Responder r) {
      auto it = workflows.find(req.params["name"]);
      if (it == workflows.end()) {
        return r.Send(Response::Json(
            404, json{{"code", 5}, {"message", "workflow \"" + req.params["name"] + "\" not found"}}
                     .dump()));
      }
      r.Send(Response::Json(200, it->second.dump()));
    });
    router.Add("PUT", "/api/v1/workflows/{ns}/{name}/{verb}", [](Request req, Responder r) {
      std::string name = req.params["name"];
      if (req.params["verb"] == "resubmit") name += "-r2d2x";
      r.Send(Response::Json(200, Workflow(name, "Running").dump()));
    });
    router.Add("DELETE", "/api/v1/workflows/{ns}/{name}",
               [](Request, Responder r) { r.Send(Response::Json(200, "{}")); });
    router.Add("GET", "/api/v1/workflow-events/{ns}", [this](Request, Responder r) {
      auto stream = r.Stream(200, {{"Content-Type", "application/json"}});
      server_.Keep(stream);
      for (const std::string& e : events) {
        if (e.empty()) break;
        stream->Write(e + "\n");
      }
      stream->Finish();
    });
    return router.Build([](Request, Responder r) {
      r.Send(Response::Json(404, R"({"code":5,"message":"no such route"})"));
    });
  }

  ServerThread server_;
};

// A node of a watched workflow.
json Node(const std::string& id, const std::string& name, const std::string& phase) {
  return {{"id", id},         {"name", "w." + name},  {"displayName", name},
          {"type", "Pod"},    {"templateName", name}, {"phase", phase},
          {"boundaryID", "w"}};
}

json WatchedWorkflow(const std::string& phase, const std::string& a, const std::string& b) {
  json wf = Workflow("w", phase);
  json nodes = {{"w",
                 {{"id", "w"},
                  {"name", "w"},
                  {"displayName", "w"},
                  {"type", "Steps"},
                  {"templateName", "main"},
                  {"phase", phase},
                  {"children", {"w-a"}}}},
                {"w-a", Node("w-a", "a", a)}};
  if (!b.empty()) {
    nodes["w"]["children"].push_back("w-b");
    nodes["w-b"] = Node("w-b", "b", b);
  }
  wf["status"]["nodes"] = nodes;
  return wf;
}

std::string Event(const std::string& type, const json& wf) {
  return json{{"result", {{"type", type}, {"object", wf}}}}.dump();
}

// The lines of `text` with their "HH:MM:SS  " clock cut off.
std::string WithoutClocks(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl == std::string::npos ? nl : nl - start);
    if (line.size() > 10 && line[2] == ':' && line[5] == ':' && line.substr(8, 2) == "  ") {
      line = line.substr(10);
    }
    out += line + "\n";
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

const char* kManifest = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: hello-
spec:
  entrypoint: main
  arguments:
    parameters:
    - name: msg
      value: default
  templates:
  - name: main
    container: {image: busybox, command: [echo, "{{workflow.parameters.msg}}"]}
)";

TEST_CASE("kiln submit sends the manifest with its overrides as JSON and prints the name",
          "[cli][client]") {
  TempDir home;
  FakeServer server;
  std::string file = home.Write("hello.yaml", kManifest);
  KilnRun r = Kiln("submit " + file +
                       " -p msg=hi -p extra=a=b --entrypoint other -l team=vision,tier=gold "
                       "-n ml --server " +
                       server.url() + " --token s3cret",
                   CleanEnv(home));
  CHECK(r.output == "hello-x7k2p\n");
  CHECK(r.exit_code == 0);
  auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  const Request& req = requests[0];
  CHECK(req.method == "POST");
  CHECK(req.path == "/api/v1/workflows/ml");
  CHECK(req.GetHeader("Authorization") == std::optional<std::string_view>("Bearer s3cret"));
  CHECK(req.GetHeader("Content-Type") == std::optional<std::string_view>("application/json"));
  json body = json::parse(req.body);
  const json& wf = body["workflow"];
  CHECK(wf["metadata"] ==
        json{{"generateName", "hello-"}, {"labels", {{"team", "vision"}, {"tier", "gold"}}}});
  CHECK(wf["spec"]["entrypoint"] == "other");
  CHECK(wf["spec"]["arguments"]["parameters"] ==
        json::parse(R"([{"name":"msg","value":"hi"},{"name":"extra","value":"a=b"}])"));
  CHECK(wf["spec"]["templates"][0]["container"]["command"] ==
        json{"echo", "{{workflow.parameters.msg}}"});
}

TEST_CASE("kiln submit sends an unchanged manifest as YAML, token and server from the environment",
          "[cli][client]") {
  TempDir home;
  FakeServer server;
  std::string file = home.Write("hello.yaml", kManifest);
  KilnRun r = Kiln("submit " + file,
                   CleanEnv(home) + " KILN_SERVER=" + server.url() + " KILN_TOKEN=from-env");
  CHECK(r.output == "hello-x7k2p\n");
  CHECK(r.exit_code == 0);
  auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].path == "/api/v1/workflows/default");
  CHECK(requests[0].GetHeader("Content-Type") ==
        std::optional<std::string_view>("application/yaml"));
  CHECK(requests[0].GetHeader("Authorization") ==
        std::optional<std::string_view>("Bearer from-env"));
  CHECK(requests[0].body == kManifest);
}

TEST_CASE("kiln submit prints the server's validation details compiler-style", "[cli][client]") {
  TempDir home;
  FakeServer server;
  server.created = Response::Json(400, R"json({"code": 3, "message": "workflow is invalid",
      "details": [{"file": "", "line": 14, "column": 9,
                   "field": "spec.templates[0].dag.tasks[2].depends",
                   "message": "unknown task \"trian\" (did you mean \"train\"?)",
                   "severity": "error"},
                  {"line": 3, "column": 1, "field": "metadata.name", "message": "too long",
                   "severity": "warning"}]})json");
  std::string file = home.Write("wf.yaml", kManifest);
  KilnRun r = Kiln("submit " + file + " --server " + server.url(), CleanEnv(home));
  CHECK(r.output == "kiln submit: workflow is invalid\n" + file +
                        ":14:9: spec.templates[0].dag.tasks[2].depends: unknown task \"trian\" "
                        "(did you mean \"train\"?)\n" +
                        file + ":3:1: metadata.name: warning: too long\n");
  CHECK(r.exit_code == 1);
}

TEST_CASE("kiln submit without a server says how to configure one or run locally",
          "[cli][client]") {
  TempDir home;
  std::string file = home.Write("hello.yaml", kManifest);
  KilnRun r = Kiln("submit " + file, CleanEnv(home));
  CHECK(r.output ==
        "kiln submit: no kiln server to submit to: pass --server URL, set "
        "KILN_SERVER, or put server: in " +
            home.Path(".config/kiln/config.yaml") +
            "\n  to run the workflow on this machine without a server: kiln run " + file + "\n");
  CHECK(r.exit_code == 2);

  KilnRun bad = Kiln("submit " + file + " -p novalue --server http://127.0.0.1:1", CleanEnv(home));
  CHECK(bad.output == "kiln submit: -p \"novalue\": expected NAME=VALUE\n");
  CHECK(bad.exit_code == 2);
}

TEST_CASE("kiln list follows the server's pages", "[cli][client]") {
  TempDir home;
  FakeServer server;
  KilnRun r = Kiln("list --server " + server.url(), CleanEnv(home));
  CHECK(r.output ==
        "NAME  PHASE      STARTED                    DURATION  MESSAGE\n"
        "c-3   Running    2026-11-24 08:00:00 +0000  -\n"
        "b-2   Succeeded  2026-11-24 08:00:00 +0000  -\n"
        "a-1   Failed     2026-11-24 08:00:00 +0000  -\n");
  CHECK(r.exit_code == 0);
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].target == "/api/v1/workflows/default");
  CHECK(requests[1].target == "/api/v1/workflows/default?listOptions.continue=tok-1");

  SECTION("--limit asks for one page and says how to get the next") {
    KilnRun one =
        Kiln("list --limit 2 --phase Running,Succeeded --server " + server.url(), CleanEnv(home));
    CHECK(one.output ==
          "NAME  PHASE      STARTED                    DURATION  MESSAGE\n"
          "c-3   Running    2026-11-24 08:00:00 +0000  -\n"
          "b-2   Succeeded  2026-11-24 08:00:00 +0000  -\n"
          "There are more workflows: kiln list -n default --phase Running --phase Succeeded "
          "--limit 2 --continue tok-1\n");
    CHECK(one.exit_code == 0);
    CHECK(server.requests().back().target == "/api/v1/workflows/default?listOptions.limit=2");
  }
}

TEST_CASE("kiln get renders a server's workflow as it renders a recorded one", "[cli][client]") {
  TempDir home;
  FakeServer server;
  KilnRun r = Kiln("get train-x7 --server " + server.url(), CleanEnv(home));
  CHECK(r.output ==
        "Name:       train-x7\n"
        "Namespace:  default\n"
        "Uid:        u-1\n"
        "Phase:      Failed\n"
        "Message:    child failed\n"
        "Created:    2026-11-24 08:00:00 +0000\n"
        "Started:    2026-11-24 08:00:00 +0000\n"
        "Finished:   2026-11-24 08:01:05 +0000\n"
        "Duration:   1m05s\n"
        "Parameters:\n"
        "  lr: 0.1\n"
        "Logs:       kiln logs train-x7\n"
        "\n"
        "STEP      TEMPLATE  PHASE      DURATION  ATTEMPTS  MESSAGE\n"
        "train-x7  main      Failed     1m05s\n"
        "├─ prep   prep      Succeeded  2.5s\n"
        "└─ fit    fit       Failed     1m01s               exit code 3\n"
        "\n"
        "Outputs:\n"
        "  Parameters:\n"
        "    prep.rows: 42\n"
        "  Artifacts:\n"
        "    prep.data: sha256:abc  3 bytes  file:///a/data\n");
  CHECK(r.exit_code == 0);
  REQUIRE(server.requests().size() == 1);
  CHECK(server.requests()[0].target == "/api/v1/workflows/default/train-x7");

  SECTION("-o wide adds the node ids") {
    KilnRun wide = Kiln("get train-x7 -o wide --server " + server.url(), CleanEnv(home));
    CHECK(Contains(wide.output,
                   "STEP      TEMPLATE  PHASE      DURATION  ATTEMPTS  ID          MESSAGE\n"
                   "train-x7  main      Failed     1m05s               train-x7\n"
                   "├─ prep   prep      Succeeded  2.5s                train-x7-1\n"
                   "└─ fit    fit       Failed     1m01s               train-x7-2  exit code 3\n"));
  }
  SECTION("-o json and -o yaml print the server's object") {
    KilnRun j = Kiln("get train-x7 -o json --server " + server.url(), CleanEnv(home));
    CHECK(json::parse(j.output) == json::parse(kTrainJson));
    KilnRun y = Kiln("get train-x7 -o yaml --server " + server.url(), CleanEnv(home));
    CHECK(y.exit_code == 0);
    CHECK(Contains(y.output,
                   "metadata:\n  creationTimestamp: \"2026-11-24T08:00:00Z\"\n"
                   "  labels:\n    team: vision\n  name: train-x7\n"));
    CHECK(Contains(y.output, "    - name: lr\n      value: \"0.1\"\n"));
    CHECK(Contains(y.output, "      children:\n      - train-x7-2\n      - train-x7-1\n"));
    CHECK(Contains(y.output, "        exitCode: \"3\"\n"));
  }
  SECTION("a workflow the server does not have") {
    KilnRun missing = Kiln("get nope --server " + server.url(), CleanEnv(home));
    CHECK(missing.output == "kiln get: workflow \"nope\" not found\n");
    CHECK(missing.exit_code == 1);
  }
}

TEST_CASE("kiln get -o yaml quotes what YAML would read as another type", "[cli][client]") {
  TempDir home;
  FakeServer server;
  server.workflows["odd"] = json::parse(R"({"metadata": {"name": "odd"},
      "a": "yes", "b": "", "c": null, "d": [], "e": {}, "f": "line1\nline2\n", "g": "k: v",
      "h": "0x1F", "i": "héllo ✔", "j": true, "k": 1.5, "l": "#x", "n": "n", "o": [[1], {"x": []}]})");
  KilnRun r = Kiln("get odd -o yaml --server " + server.url(), CleanEnv(home));
  CHECK(r.output ==
        "a: \"yes\"\n"
        "b: \"\"\n"
        "c: null\n"
        "d: []\n"
        "e: {}\n"
        "f: |\n"
        "  line1\n"
        "  line2\n"
        "g: 'k: v'\n"
        "h: \"0x1F\"\n"
        "i: héllo ✔\n"
        "j: true\n"
        "k: 1.5\n"
        "l: '#x'\n"
        "metadata:\n"
        "  name: odd\n"
        "\"n\": \"n\"\n"
        "o:\n"
        "- - 1\n"
        "- x: []\n");
  CHECK(r.exit_code == 0);
}

TEST_CASE("kiln logs reads a server's log stream, prefixed by step", "[cli][client]") {
  TempDir home;
  FakeServer server;
  KilnRun all = Kiln("logs train-x7 --server " + server.url(), CleanEnv(home));
  CHECK(all.output == "prep: hello\nfit: fitting\n");
  CHECK(all.exit_code == 0);
  CHECK(server.requests().back().target == "/api/v1/workflows/default/train-x7/log");

  KilnRun one = Kiln("logs train-x7 fit -f --server " + server.url(), CleanEnv(home));
  CHECK(one.output == "fitting\n");
  CHECK(one.exit_code == 0);
  CHECK(server.requests().back().target ==
        "/api/v1/workflows/default/train-x7/log?nodeId=train-x7-2&follow=true");

  KilnRun typo = Kiln("logs train-x7 fitt --server " + server.url(), CleanEnv(home));
  CHECK(typo.output ==
        "kiln logs: workflow train-x7 has no step \"fitt\" (did you mean \"fit\"?); its steps "
        "are: fit, prep\n");
  CHECK(typo.exit_code == 1);
}

TEST_CASE("kiln watch prints each node phase change until the workflow ends", "[cli][client]") {
  TempDir home;
  FakeServer server;
  server.workflows["w"] = WatchedWorkflow("Running", "Running", "");
  server.events = {Event("MODIFIED", WatchedWorkflow("Running", "Succeeded", "Pending")),
                   Event("MODIFIED", WatchedWorkflow("Running", "Succeeded", "Running")),
                   Event("MODIFIED", WatchedWorkflow("Succeeded", "Succeeded", "Succeeded"))};
  KilnRun r = Kiln("watch w --server " + server.url(), CleanEnv(home));
  std::string out = WithoutClocks(r.output);
  CHECK(
      out.starts_with("a                                        Running\n"
                      "workflow w                               Running\n"
                      "a                                        Succeeded\n"
                      "b                                        Pending\n"
                      "b                                        Running\n"
                      "b                                        Succeeded\n"
                      "workflow w                               Succeeded\n"
                      "\nName:       w\n"));
  CHECK(Contains(out,
                 "STEP  TEMPLATE  PHASE      DURATION  ATTEMPTS  MESSAGE\n"
                 "w     main      Succeeded  -\n"
                 "├─ a  a         Succeeded  -\n"
                 "└─ b  b         Succeeded  -\n"));
  CHECK(r.exit_code == 0);
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1].target ==
        "/api/v1/workflow-events/default?listOptions.fieldSelector=metadata.name%3Dw");

  SECTION("a workflow that fails exits 1 and says so") {
    json failed_wf = WatchedWorkflow("Failed", "Failed", "");
    failed_wf["status"]["message"] = "step a failed";
    server.events = {Event("MODIFIED", failed_wf)};
    KilnRun failed = Kiln("watch w --server " + server.url(), CleanEnv(home));
    CHECK(failed.exit_code == 1);
    CHECK(Contains(failed.output, "kiln watch: workflow w Failed: step a failed\n"));
  }
}

TEST_CASE("kiln submit --watch submits, then follows the new workflow", "[cli][client]") {
  TempDir home;
  FakeServer server;
  server.created = Response::Json(200, WatchedWorkflow("Pending", "Pending", "").dump());
  server.workflows["w"] = WatchedWorkflow("Running", "Running", "");
  server.events = {Event("MODIFIED", WatchedWorkflow("Succeeded", "Succeeded", ""))};
  std::string file = home.Write("hello.yaml", kManifest);
  KilnRun r = Kiln("submit --watch " + file + " --server " + server.url(), CleanEnv(home));
  CHECK(r.output.starts_with("w\n"));
  CHECK(Contains(WithoutClocks(r.output), "workflow w                               Succeeded\n"));
  CHECK(r.exit_code == 0);
}

TEST_CASE("kiln stop, terminate, suspend, retry, resubmit, resume and delete", "[cli][client]") {
  TempDir home;
  FakeServer server;
  KilnRun stop = Kiln("stop wf1 --message why --server " + server.url(), CleanEnv(home));
  CHECK(stop.output == "workflow wf1 stopped\n");
  CHECK(stop.exit_code == 0);
  auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "PUT");
  CHECK(requests[0].target == "/api/v1/workflows/default/wf1/stop");
  CHECK(json::parse(requests[0].body) ==
        json{{"name", "wf1"}, {"namespace", "default"}, {"message", "why"}});

  CHECK(Kiln("terminate wf1 wf2 -n ml --server " + server.url(), CleanEnv(home)).output ==
        "workflow wf1 terminated\nworkflow wf2 terminated\n");
  CHECK(server.requests().back().target == "/api/v1/workflows/ml/wf2/terminate");
  CHECK(Kiln("retry wf1 --server " + server.url(), CleanEnv(home)).output ==
        "workflow wf1 retried\n");
  CHECK(json::parse(server.requests().back().body) == json{{"name", "wf1"}, {"namespace", "default"}});
  CHECK(Kiln("retry wf1 --restart-successful --node-field-selector displayName=train -p lr=0.1 -p n=2 --server " +
                 server.url(),
             CleanEnv(home))
            .output == "workflow wf1 retried\n");
  CHECK(server.requests().back().target == "/api/v1/workflows/default/wf1/retry");
  CHECK(json::parse(server.requests().back().body) ==
        json{{"name", "wf1"},
             {"namespace", "default"},
             {"restartSuccessful", true},
             {"nodeFieldSelector", "displayName=train"},
             {"parameters", {"lr=0.1", "n=2"}}});
  CHECK(Kiln("suspend wf1 --server " + server.url(), CleanEnv(home)).output ==
        "workflow wf1 suspended\n");
  CHECK(server.requests().back().target == "/api/v1/workflows/default/wf1/suspend");
  CHECK(Kiln("resubmit wf1 --server " + server.url(), CleanEnv(home)).output ==
        "workflow wf1 resubmitted as wf1-r2d2x\n");
  CHECK(Kiln("resume wf1 --server " + server.url(), CleanEnv(home)).output ==
        "workflow wf1 resumed\n");
  KilnRun del = Kiln("delete wf1 --server " + server.url(), CleanEnv(home));
  CHECK(del.output == "workflow wf1 deleted\n");
  CHECK(del.exit_code == 0);
  CHECK(server.requests().back().method == "DELETE");
  CHECK(server.requests().back().target == "/api/v1/workflows/default/wf1");
}

TEST_CASE("kiln says to check the token when the server answers 401", "[cli][client]") {
  TempDir home;
  kiln::http::ServerOptions options;
  options.bearer_token = "right";
  options.unauthorized = [](const Request&) {
    return Response::Json(401, R"({"code":16,"message":"token not valid"})");
  };
  FakeServer server(options);
  KilnRun wrong = Kiln("list --server " + server.url() + " --token wrong", CleanEnv(home));
  CHECK(wrong.output ==
        "kiln list: token not valid\n"
        "  the server did not accept the token: check --token or KILN_TOKEN\n");
  CHECK(wrong.exit_code == 1);
  KilnRun none = Kiln("stop wf1 --server " + server.url(), CleanEnv(home));
  CHECK(none.output ==
        "kiln stop: token not valid\n  the server needs a token: pass --token or set KILN_TOKEN\n");
  CHECK(none.exit_code == 1);
  KilnRun right = Kiln("list --server " + server.url() + " --token right", CleanEnv(home));
  CHECK(right.exit_code == 0);
}

TEST_CASE("kiln names the URL it cannot reach and how to fix it", "[cli][client]") {
  TempDir home;
  const std::string url = "http://127.0.0.1:" + std::to_string(ClosedPort());
  KilnRun r = Kiln("get wf1 --server " + url, CleanEnv(home));
  CHECK(r.output == "kiln get: cannot connect to " + url +
                        ": Connection refused\n"
                        "  start a server there with `kiln server`, or fix --server (or "
                        "$KILN_SERVER, or server: in " +
                        home.Path(".config/kiln/config.yaml") + ")\n");
  CHECK(r.exit_code == 1);

  KilnRun bad = Kiln("list --server localhost:2746", CleanEnv(home));
  CHECK(bad.output ==
        "kiln list: invalid server URL \"localhost:2746\": expected http://HOST:PORT or "
        "https://HOST:PORT\n");
  CHECK(bad.exit_code == 2);
}

TEST_CASE("the config file names the server, token and namespace", "[cli][client]") {
  TempDir home;
  FakeServer server;
  home.Write(".config/kiln/config.yaml",
             "server: " + server.url() + "\ntoken: from-file\nnamespace: ml\n");
  KilnRun r = Kiln("stop wf1", CleanEnv(home));
  CHECK(r.output == "workflow wf1 stopped\n");
  auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].target == "/api/v1/workflows/ml/wf1/stop");
  CHECK(requests[0].GetHeader("Authorization") ==
        std::optional<std::string_view>("Bearer from-file"));

  SECTION("flags and the environment come first") {
    KilnRun env = Kiln("stop wf1 -n prod", CleanEnv(home) + " KILN_TOKEN=from-env");
    CHECK(env.output == "workflow wf1 stopped\n");
    CHECK(server.requests().back().target == "/api/v1/workflows/prod/wf1/stop");
    CHECK(server.requests().back().GetHeader("Authorization") ==
          std::optional<std::string_view>("Bearer from-env"));
  }
  SECTION("--data-dir reads the local store whatever the config says") {
    KilnRun local = Kiln("list --data-dir " + home.Path("data"), CleanEnv(home));
    CHECK(local.output.starts_with("kiln list: data directory " + home.Path("data") +
                                   " does not exist"));
    CHECK(server.requests().size() == 1);
  }
  SECTION("a misspelt key") {
    home.Write(".config/kiln/config.yaml", "server: http://127.0.0.1:1\ntokn: x\n");
    KilnRun bad = Kiln("list", CleanEnv(home));
    CHECK(bad.output == "kiln list: " + home.Path(".config/kiln/config.yaml") +
                            ":2:1: unknown key \"tokn\" (did you mean \"token\"?); the keys are "
                            "server, token, namespace, ca-file and insecure-skip-tls-verify\n");
    CHECK(bad.exit_code == 1);
  }
}

}  // namespace
