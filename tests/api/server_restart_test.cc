// `kiln server` as a process: killed with SIGKILL in the middle of a workflow and started again,
// it finishes the workflow from the store's state without re-running a step that had succeeded.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "http/client.h"

namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

struct Server {
  pid_t pid = -1;
  std::string url;
  std::string out;

  // Starts `kiln server` on a free port and returns once it says where it listens.
  Server(const std::string& data_dir, const std::string& log) : out(log) {
    pid = ::fork();
    if (pid == 0) {
      FILE* f = std::freopen(log.c_str(), "w", stdout);
      (void)f;
      ::dup2(::fileno(stdout), 2);
      ::execl(KILN_BINARY, "kiln", "server", "--data-dir", data_dir.c_str(), "--listen", "127.0.0.1:0", "--no-sandbox",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // The server prints its URL once it listens; read it from its output as it comes.
    for (int i = 0; i < 6000 && url.empty(); ++i) {
      std::string text = ReadFile(log);
      size_t at = text.find("listening on ");
      if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
        url = text.substr(at + 13, text.find(' ', at + 13) - at - 13);
        break;
      }
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a file, not synchronising
    }
    INFO(ReadFile(log));
    REQUIRE(!url.empty());
  }
  void Kill(int sig) {
    if (pid <= 0) return;
    ::kill(pid, sig);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
  }
  ~Server() { Kill(SIGKILL); }
};

TEST_CASE("kiln server killed with SIGKILL mid-workflow finishes it after a restart, no succeeded step re-run",
          "[api][process]") {
  std::string tmpl = (fs::temp_directory_path() / "kiln-restart-XXXXXX").string();
  const std::string dir = ::mkdtemp(tmpl.data());
  const std::string data = dir + "/data";
  const std::string manifest = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: restart}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - [{name: first, template: first}]
    - [{name: second, template: second}]
    - [{name: third, template: third}]
  - name: first
    container: {image: alpine, command: [sh, -c, "echo ran >> )" + dir + R"(/first.count"]}
  - name: second
    retryStrategy: {limit: 2, retryPolicy: Always}  # a lost step is an Error: OnFailure would not retry it
    container: {image: alpine, command: [sh, -c, "touch )" + dir + R"(/second.started; while [ ! -f )" + dir +
                               R"(/go ]; do sleep 0.05; done"]}
  - name: third
    container: {image: alpine, command: [echo, done]}
)";
  {
    Server s(data, dir + "/server1.log");
    kiln::http::Endpoint e;
    e.url = s.url;
    auto r = kiln::http::Fetch(e, "POST", "/api/v1/workflows/ml", manifest, {{"Content-Type", "application/yaml"}});
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    // Until the second step runs (the watch stream says so).
    auto watched = kiln::http::FetchStream(e, "GET", "/api/v1/workflow-events/ml?listOptions.fieldSelector=metadata.name%3Drestart",
                                     [&](std::string_view line) {
                                       Json ev = Json::parse(line);
                                       for (const auto& [id, n] : ev["result"]["object"]["status"]["nodes"].items()) {
                                         // With a retryStrategy the step is a Retry node over its attempts' Pod nodes.
                                         if (n["type"] == "Pod" && n["phase"] == "Running" &&
                                             n["displayName"].get<std::string>().starts_with("second")) {
                                           return false;
                                         }
                                       }
                                       return true;
                                     });
    REQUIRE(watched);
    s.Kill(SIGKILL);
  }
  std::ofstream(dir + "/go").put('\n');
  {
    Server s(data, dir + "/server2.log");
    CHECK(ReadFile(dir + "/server2.log").find("resumed 1 unfinished workflow") != std::string::npos);
    kiln::http::Endpoint e;
    e.url = s.url;
    std::string phase;
    auto watched = kiln::http::FetchStream(e, "GET", "/api/v1/workflow-events/ml?listOptions.fieldSelector=metadata.name%3Drestart",
                                     [&](std::string_view line) {
                                       phase = Json::parse(line)["result"]["object"]["status"]["phase"];
                                       return phase != "Succeeded" && phase != "Failed" && phase != "Error";
                                     });
    REQUIRE(watched);
    auto got = kiln::http::Fetch(e, "GET", "/api/v1/workflows/ml/restart");
    REQUIRE(got);
    INFO(got->body);
    INFO(ReadFile(dir + "/server2.log"));
    CHECK(phase == "Succeeded");
    // The first step ran once: its success was recorded before the kill.
    CHECK(ReadFile(dir + "/first.count") == "ran\n");
    // SIGTERM: a graceful stop.
    s.Kill(SIGTERM);
    CHECK(ReadFile(dir + "/server2.log").find("shutting down") != std::string::npos);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
