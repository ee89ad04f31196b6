// kiln run's failure modes, and reading back what it recorded with kiln get, list and logs: the
// real binary on small workflows, each test with its own data directory. Steps run without the
// sandbox (--no-sandbox) so that their output files can live in the test's temporary directory.
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "tests/cli/cli_util.h"

namespace {

namespace fs = std::filesystem;
using kiln::testing::Kiln;
using kiln::testing::KilnRun;
using kiln::testing::KilnStdout;
using kiln::testing::ReadBytes;
using kiln::testing::TempDir;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// A DAG with a workflow parameter, a step that echoes a known line, and a step with an output
// parameter and an output artifact ("abc", whose sha256 is kAbcSha256). @DIR@: where the second
// step writes its outputs.
const char* kPipeline = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: @NAME@
spec:
  entrypoint: main
  arguments:
    parameters:
    - {name: greeting, value: hello}
  templates:
  - name: main
    dag:
      tasks:
      - name: say
        template: say
        arguments: {parameters: [{name: text, value: "{{workflow.parameters.greeting}}"}]}
      - {name: make, template: make, depends: say}
  - name: say
    inputs: {parameters: [{name: text}]}
    container:
      image: busybox
      command: [sh, -c]
      args: ["echo kiln-log-marker-{{inputs.parameters.text}}; echo second line"]
  - name: make
    container:
      image: busybox
      command: [sh, -c]
      args: ["printf abc > @DIR@/data.txt; echo 42 > @DIR@/n.txt; echo made"]
    outputs:
      parameters:
      - name: count
        valueFrom: {path: "@DIR@/n.txt"}
      artifacts:
      - {name: data, path: "@DIR@/data.txt"}
)";

const char* kAbcSha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

// A DAG whose one task runs a command that does not exist. (Were that step the entrypoint, the
// workflow would end Error, as in Argo; a DAG with an errored task ends Failed.)
const char* kMissingExecutable = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: @NAME@
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: run, template: missing}
  - name: missing
    container: {image: busybox, command: [kiln-test-no-such-command]}
)";

// One step that leaves a file behind, to tell whether anything ran.
const char* kTouch = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: touch
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [touch, "@DIR@/ran"]}
)";

struct Fixture {
  TempDir dir;
  std::string data = dir.Path("data");

  // Writes the workflow `text` (with @NAME@ and @DIR@ filled in) and runs it.
  KilnRun RunWorkflow(const std::string& text, const std::string& name) {
    std::string out_dir = dir.Path("out-" + name);
    fs::create_directories(out_dir);
    std::string file =
        dir.Write(name + ".yaml", Replace(Replace(text, "@NAME@", name), "@DIR@", out_dir));
    return Kiln("run --no-sandbox --data-dir " + data + " " + file);
  }
};

}  // namespace

TEST_CASE("kiln run: a missing executable fails its step with Error and the workflow with Failed",
          "[cli][store]") {
  Fixture f;
  KilnRun run = f.RunWorkflow(kMissingExecutable, "missing-exe");
  INFO(run.output);
  CHECK(run.exit_code == 1);
  CHECK(Contains(run.output, "executable not found: kiln-test-no-such-command"));
  CHECK(Contains(run.output, "workflow missing-exe Failed"));

  KilnRun get = KilnStdout("get -o json --data-dir " + f.data + " missing-exe");
  REQUIRE(get.exit_code == 0);
  nlohmann::json j = nlohmann::json::parse(get.output);
  CHECK(j["phase"] == "Failed");
  REQUIRE(j["nodes"].size() == 2);
  CHECK(j["nodes"][1]["displayName"] == "run");
  CHECK(j["nodes"][1]["phase"] == "Error");
  CHECK(j["nodes"][1]["message"] == "executable not found: kiln-test-no-such-command");
  CHECK(j["nodes"][1]["exitCode"] == 127);

  KilnRun text = Kiln("get --data-dir " + f.data + " missing-exe");
  CHECK(text.exit_code == 0);
  CHECK(Contains(text.output, "Phase:      Failed\n"));
  CHECK(Contains(text.output, "\n└─ run       missing   Error   "));
  CHECK(Contains(text.output, "   executable not found: kiln-test-no-such-command\n"));
}

TEST_CASE("kiln run refuses a data directory it cannot create, naming it, and runs nothing",
          "[cli][store]") {
  TempDir dir;
  std::string wf = dir.Write("touch.yaml", Replace(kTouch, "@DIR@", dir.path.string()));
  SECTION("a file where the directory should be") {
    std::string blocker = dir.Write("blocker", "not a directory");
    KilnRun run = Kiln("run --no-sandbox --data-dir " + blocker + " " + wf);
    CHECK(run.exit_code == 1);
    CHECK(Contains(run.output, "kiln run: cannot use data directory " + blocker + ": "));
    CHECK(Contains(run.output, "pass a writable --data-dir"));
    CHECK(ReadBytes(blocker) == "not a directory");
    KilnRun below = Kiln("run --no-sandbox --data-dir " + blocker + "/sub " + wf);
    CHECK(below.exit_code == 1);
    CHECK(Contains(below.output, "kiln run: cannot use data directory " + blocker + "/sub: "));
  }
  SECTION("a directory even root cannot create") {
    // Tests run as root, so permission bits do not stop them; /proc refuses new entries to all.
    KilnRun run = Kiln("run --no-sandbox --data-dir /proc/kiln-test-data " + wf);
    CHECK(run.exit_code == 1);
    CHECK(Contains(run.output, "kiln run: cannot use data directory /proc/kiln-test-data: "));
    CHECK_FALSE(fs::exists("/proc/kiln-test-data"));
  }
  CHECK_FALSE(fs::exists(dir.path / "ran"));
}

TEST_CASE("a corrupted kiln.db is refused with a clear error and left byte-for-byte as it was",
          "[cli][store]") {
  TempDir dir;
  std::string data = dir.Path("data");
  fs::create_directories(data);
  std::mt19937 random(20240611);
  std::string garbage;
  for (int i = 0; i < 8192; ++i) garbage += static_cast<char>(random() & 0xff);
  std::string db = dir.Write("data/kiln.db", garbage);
  std::string wf = dir.Write("touch.yaml", Replace(kTouch, "@DIR@", dir.path.string()));
  const std::string refused =
      db +
      " is not a kiln database (file is not a database); move it aside or pass "
      "another --data-dir";

  KilnRun run = Kiln("run --no-sandbox --data-dir " + data + " " + wf);
  CHECK(run.exit_code == 1);
  CHECK(Contains(run.output, "kiln run: " + refused));
  CHECK_FALSE(fs::exists(dir.path / "ran"));
  CHECK_FALSE(fs::exists(fs::path(data) / "workflows"));

  for (const char* cmd : {"get touch", "list", "logs touch"}) {
    INFO(cmd);
    KilnRun r = Kiln(std::string(cmd) + " --data-dir " + data);
    CHECK(r.exit_code == 1);
    CHECK(Contains(r.output, refused));
  }
  CHECK(ReadBytes(db) == garbage);
  CHECK_FALSE(fs::exists(db + "-wal"));
  CHECK_FALSE(fs::exists(db + "-journal"));
}

TEST_CASE("kiln get, list and logs say when there is no database to read", "[cli][store]") {
  TempDir dir;
  std::string missing = dir.Path("nowhere");
  KilnRun none = Kiln("list --data-dir " + missing);
  CHECK(none.exit_code == 1);
  CHECK(none.output ==
        "kiln list: data directory " + missing +
            " does not exist: no workflow has run with it; pass the --data-dir that `kiln run` "
            "used\n");
  KilnRun empty = Kiln("get x --data-dir " + dir.path.string());
  CHECK(empty.exit_code == 1);
  CHECK(empty.output ==
        "kiln get: no database in data directory " + dir.path.string() + " (" +
            dir.Path("kiln.db") +
            " does not exist): no workflow has run with it; pass the --data-dir that `kiln run` "
            "used\n");
  CHECK_FALSE(fs::exists(dir.path / "kiln.db"));
}

TEST_CASE("kiln get shows phases, parameters, the node tree and artifact digests after a run",
          "[cli][store]") {
  Fixture f;
  KilnRun run = f.RunWorkflow(kPipeline, "pipeline");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);

  KilnRun get = Kiln("get --data-dir " + f.data + " pipeline");
  INFO(get.output);
  CHECK(get.exit_code == 0);
  CHECK(get.output.starts_with("Name:       pipeline\nNamespace:  default\nUid:        "));
  CHECK(Contains(get.output, "\nPhase:      Succeeded\n"));
  CHECK(Contains(get.output, "\nParameters:\n  greeting: hello\n"));
  CHECK(Contains(get.output, "\nLogs:       " + f.data + "/workflows/"));
  CHECK(Contains(get.output, "STEP"));
  CHECK(Contains(get.output, "├─ say"));
  CHECK(Contains(get.output, "└─ make"));
  CHECK(Contains(get.output, "\nOutputs:\n  Parameters:\n    make.count: 42\n"));
  CHECK(Contains(get.output,
                 "    make.data: sha256:" + std::string(kAbcSha256) + "  3 bytes  file://"));

  KilnRun json = KilnStdout("get -o json --data-dir " + f.data + " pipeline");
  REQUIRE(json.exit_code == 0);
  nlohmann::json j = nlohmann::json::parse(json.output);
  CHECK(j["name"] == "pipeline");
  CHECK(j["phase"] == "Succeeded");
  CHECK(j["parameters"]["greeting"] == "hello");
  REQUIRE(j["nodes"].size() == 3);
  CHECK(j["nodes"][0]["displayName"] == "pipeline");
  CHECK(j["nodes"][1]["displayName"] == "say");
  CHECK(j["nodes"][2]["displayName"] == "make");
  for (const auto& n : j["nodes"]) CHECK(n["phase"] == "Succeeded");
  REQUIRE(j["outputs"]["artifacts"].size() == 1);
  CHECK(j["outputs"]["artifacts"][0]["sha256"] == kAbcSha256);
  CHECK(j["outputs"]["artifacts"][0]["size"] == 3);
  REQUIRE(j["outputs"]["parameters"].size() == 1);
  CHECK(j["outputs"]["parameters"][0]["value"] == "42");

  // By uid too.
  KilnRun by_uid =
      KilnStdout("get -o json --data-dir " + f.data + " " + j["uid"].get<std::string>());
  CHECK(by_uid.exit_code == 0);
  CHECK(nlohmann::json::parse(by_uid.output)["name"] == "pipeline");
}

TEST_CASE("kiln logs prints every step's output, or one step's", "[cli][store]") {
  Fixture f;
  KilnRun run = f.RunWorkflow(kPipeline, "pipeline");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);

  KilnRun one = Kiln("logs --data-dir " + f.data + " pipeline say");
  CHECK(one.exit_code == 0);
  CHECK(one.output == "kiln-log-marker-hello\nsecond line\n");

  KilnRun all = Kiln("logs --data-dir " + f.data + " pipeline");
  CHECK(all.exit_code == 0);
  CHECK(all.output == "say: kiln-log-marker-hello\nsay: second line\nmake: made\n");

  KilnRun by_id = Kiln("logs --data-dir " + f.data + " pipeline pipeline.make");
  CHECK(by_id.output == "made\n");
  CHECK(by_id.exit_code == 0);

  KilnRun stamped = Kiln("logs --timestamps --data-dir " + f.data + " pipeline say");
  CHECK(Contains(stamped.output, "Z kiln-log-marker-hello\n"));

  KilnRun paths = Kiln("logs --path --data-dir " + f.data + " pipeline say");
  CHECK(paths.output.starts_with("say: " + f.data + "/workflows/"));
  CHECK(paths.output.ends_with("/log\n"));

  KilnRun unknown = Kiln("logs --data-dir " + f.data + " pipeline sya");
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.output ==
        "kiln logs: workflow pipeline has no step \"sya\" (did you mean \"say\"?); its steps are: "
        "make, say\n");
}

TEST_CASE("kiln logs says why a step that never ran has no log", "[cli][store]") {
  Fixture f;
  KilnRun run = f.RunWorkflow(kMissingExecutable, "missing-exe");
  REQUIRE(run.exit_code == 1);
  KilnRun logs = Kiln("logs --data-dir " + f.data + " missing-exe run");
  INFO(logs.output);
  CHECK(Contains(logs.output, "executable not found: kiln-test-no-such-command"));
}

TEST_CASE("kiln get and logs name an unknown workflow and say how to list the recorded ones",
          "[cli][store]") {
  Fixture f;
  REQUIRE(f.RunWorkflow(kMissingExecutable, "recorded").exit_code == 1);
  const std::string want = "workflow \"nope\" not found in " + f.data +
                           "/kiln.db; `kiln list --data-dir " + f.data +
                           "` shows the recorded ones\n";
  KilnRun get = Kiln("get --data-dir " + f.data + " nope");
  CHECK(get.exit_code == 1);
  CHECK(get.output == "kiln get: " + want);
  KilnRun logs = Kiln("logs --data-dir " + f.data + " nope");
  CHECK(logs.exit_code == 1);
  CHECK(logs.output == "kiln logs: " + want);
  KilnRun usage = Kiln("get --data-dir " + f.data);
  CHECK(usage.exit_code == 2);
}

TEST_CASE("kiln list: newest first, phase filters, pages with continue tokens, JSON",
          "[cli][store]") {
  Fixture f;
  REQUIRE(f.RunWorkflow(kPipeline, "first").exit_code == 0);
  REQUIRE(f.RunWorkflow(kMissingExecutable, "second").exit_code == 1);
  REQUIRE(f.RunWorkflow(kPipeline, "third").exit_code == 0);

  auto names = [](const std::string& json_text) {
    std::vector<std::string> out;
    nlohmann::json j = nlohmann::json::parse(json_text);
    for (const auto& w : j["workflows"]) out.push_back(w["name"]);
    return out;
  };
  auto list = [&](const std::string& args) {
    KilnRun r = KilnStdout("list -o json --data-dir " + f.data + " " + args);
    REQUIRE(r.exit_code == 0);
    return r.output;
  };
  using V = std::vector<std::string>;
  CHECK(names(list("")) == V{"third", "second", "first"});
  CHECK(names(list("--phase Succeeded")) == V{"third", "first"});
  CHECK(names(list("--phase Failed")) == V{"second"});
  CHECK(names(list("--phase Failed,Succeeded")) == V{"third", "second", "first"});
  CHECK(names(list("--phase Running --phase Failed")) == V{"second"});

  // Pages: one filtered by the store (one phase) and one filtered here (two phases).
  for (const std::string filter : {"", "--phase Succeeded,Failed"}) {
    INFO(filter);
    V seen;
    std::string token;
    for (int page = 0; page < 5; ++page) {
      nlohmann::json j = nlohmann::json::parse(
          list(filter + " --limit 2" + (token.empty() ? "" : " --continue " + token)));
      for (const auto& w : j["workflows"]) seen.push_back(w["name"]);
      token = j["continue"];
      if (token.empty()) break;
    }
    CHECK(seen == V{"third", "second", "first"});
  }
  nlohmann::json page = nlohmann::json::parse(list("--phase Succeeded --limit 1"));
  CHECK(names(page.dump()) == V{"third"});
  CHECK(names(list("--phase Succeeded --limit 1 --continue " +
                   page["continue"].get<std::string>())) == V{"first"});

  KilnRun text = Kiln("list --data-dir " + f.data + " --limit 2");
  INFO(text.output);
  CHECK(text.exit_code == 0);
  CHECK(text.output.starts_with("NAME    PHASE      STARTED"));
  CHECK(Contains(text.output, "\nthird   Succeeded  "));
  CHECK(Contains(text.output, "\nsecond  Failed     "));
  CHECK_FALSE(Contains(text.output, "\nfirst"));
  CHECK(Contains(text.output, "There are more workflows: kiln list --data-dir " + f.data +
                                  " --limit 2 --continue "));

  // The data directory from the environment, as kiln run resolves it.
  KilnRun env = Kiln("list", "KILN_DATA_DIR=" + f.data);
  CHECK(env.exit_code == 0);
  CHECK(Contains(env.output, "\nfirst "));

  KilnRun bad_phase = Kiln("list --phase Suceeded --data-dir " + f.data);
  CHECK(bad_phase.exit_code == 2);
  CHECK(bad_phase.output ==
        "kiln list: --phase \"Suceeded\": unknown phase (did you mean \"Succeeded\"?); phases are "
        "Pending, Running, Succeeded, Failed, Error\n");
  KilnRun bad_token = Kiln("list --continue garbage --data-dir " + f.data);
  CHECK(bad_token.exit_code == 1);
}
