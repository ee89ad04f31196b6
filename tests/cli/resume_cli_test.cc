// kill -9 of `kiln run` mid-run, then `kiln resume` (or the same `kiln run` again): the run
// completes, and the event log shows that no step that had succeeded ran twice.
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "tests/cli/cli_util.h"

namespace kiln::testing {

namespace {

// A three-step workflow whose middle step runs until it is killed on its first attempt and
// succeeds on its second ({{retries}} is the attempt number).
const char* kWorkflow = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: resume-me}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: first, template: quick}
    - - {name: slow, template: slow}
    - - {name: last, template: quick}
  - name: quick
    container: {image: busybox, command: [sh, -c, "echo done"]}
  - name: slow
    retryStrategy: {limit: 1, retryPolicy: Always}
    script:
      image: busybox
      command: [sh]
      source: |
        if [ "{{retries}}" = "0" ]; then exec sleep 120; fi
        echo second attempt
)";

std::string Sql(const std::string& db, const std::string& query) {
  int code = 0;
  std::string out = Capture("sqlite3 -readonly " + db + " \"" + query + "\" 2>/dev/null", &code);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// Starts `kiln run` in the background; returns its pid.
pid_t Spawn(const std::string& file, const std::string& data, const std::string& templates = "") {
  std::fflush(stdout);  // or the child's freopen flushes Catch's buffered output a second time
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::freopen("/dev/null", "w", stdout);
    if (templates.empty()) {
      ::execl(KILN_BINARY, "kiln", "run", file.c_str(), "--data-dir", data.c_str(), static_cast<char*>(nullptr));
    } else {
      ::execl(KILN_BINARY, "kiln", "run", file.c_str(), "--data-dir", data.c_str(), "--templates",
              templates.c_str(), static_cast<char*>(nullptr));
    }
    ::_exit(127);
  }
  return pid;
}

// Waits until `query` returns `want` (the run got there), or 60 s pass (a failure).
bool WaitFor(const std::string& db, const std::string& query, const std::string& want) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Sql(db, query) == want) return true;
    struct timespec pause = {0, 20 * 1000 * 1000};  // polling a condition, not timing a race
    ::nanosleep(&pause, nullptr);
  }
  return false;
}

void KillMidRun(const TempDir& d, const std::string& file, const std::string& templates = "") {
  std::string db = d.Path("data/kiln.db");
  pid_t pid = Spawn(file, d.Path("data"), templates);
  // The slow step's first attempt is running: kiln recorded its StepStarted.
  bool running = WaitFor(db, "select phase from nodes where id='resume-me[1].slow(0)'", "Running");
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(running);
  REQUIRE(WIFSIGNALED(status));
  CHECK(Sql(db, "select phase from workflows where name='resume-me'") == "Running");
}

void CheckCompletedOnce(const TempDir& d) {
  std::string db = d.Path("data/kiln.db");
  CHECK(Sql(db, "select phase from workflows where name='resume-me'") == "Succeeded");
  auto launches = [&](const std::string& node) {
    return Sql(db, "select count(*) from events where kind='Launch' and node_id='" + node + "'");
  };
  // From the event log: steps that had succeeded were launched once in the whole history.
  CHECK(launches("resume-me[0].first") == "1");
  CHECK(launches("resume-me[1].slow(0)") == "1");
  CHECK(launches("resume-me[1].slow(1)") == "1");
  CHECK(launches("resume-me[2].last") == "1");
  CHECK(Sql(db, "select phase || ': ' || message from nodes where id='resume-me[1].slow(0)'") ==
        "Error: step lost: kiln stopped while it ran; its process is gone");
  CHECK(Sql(db, "select count(*) from workflows") == "1");
}

}  // namespace

TEST_CASE("kill -9 mid-run, then kiln resume: completes without rerunning what succeeded", "[cli][resume]") {
  TempDir d;
  std::string file = d.Write("wf.yaml", kWorkflow);
  KillMidRun(d, file);
  KilnRun r = Kiln("resume resume-me --data-dir " + d.Path("data"));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("resumed") != std::string::npos);
  CheckCompletedOnce(d);
  // Resuming a finished workflow changes nothing.
  KilnRun again = Kiln("resume resume-me --data-dir " + d.Path("data"));
  CHECK(again.exit_code == 0);
  CHECK(again.output.find("already Succeeded; nothing to resume") != std::string::npos);
}

TEST_CASE("kill -9 mid-run, then the same kiln run again: it resumes the unfinished run", "[cli][resume]") {
  TempDir d;
  std::string file = d.Write("wf.yaml", kWorkflow);
  KillMidRun(d, file);
  KilnRun r = Kiln("run " + file + " --data-dir " + d.Path("data"));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("resuming workflow resume-me") != std::string::npos);
  CheckCompletedOnce(d);
}

TEST_CASE("kiln resume runs the --templates the run started with, even once they changed", "[cli][resume]") {
  TempDir d;
  // The same workflow, its last step called through templateRef.
  std::string wf = kWorkflow;
  wf.replace(wf.find("{name: last, template: quick}"), std::string("{name: last, template: quick}").size(),
             "{name: last, templateRef: {name: lib, template: finish}}");
  std::string file = d.Write("wf.yaml", wf);
  const char* lib = R"(apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: lib}
spec:
  templates:
  - name: finish
    container: {image: busybox, command: [sh, -c, "echo RECORDED-VERSION"]}
)";
  d.Write("lib/lib.yaml", lib);
  KillMidRun(d, file, d.Path("lib"));
  // The template file changes after the crash; the resumed run keeps the recorded one.
  d.Write("lib/lib.yaml", std::string(lib).replace(std::string(lib).find("RECORDED-VERSION"), 16, "CHANGED-VERSION!"));
  KilnRun r = Kiln("resume resume-me --data-dir " + d.Path("data"));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CheckCompletedOnce(d);
  std::string db = d.Path("data/kiln.db");
  std::string launch = Sql(db, "select data_json from events where kind='Launch' and node_id='resume-me[2].last'");
  CHECK(launch.find("RECORDED-VERSION") != std::string::npos);
  CHECK(launch.find("CHANGED-VERSION") == std::string::npos);
}

TEST_CASE("kiln resume of an unknown workflow says what to do", "[cli][resume]") {
  TempDir d;
  std::string file = d.Write("wf.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: ok}
spec:
  entrypoint: a
  templates:
  - name: a
    container: {image: busybox, command: [sh, -c, "true"]}
)");
  REQUIRE(Kiln("run " + file + " --data-dir " + d.Path("data")).exit_code == 0);
  KilnRun r = Kiln("resume nope --data-dir " + d.Path("data"));
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("workflow \"nope\" not found") != std::string::npos);
}

}  // namespace kiln::testing
