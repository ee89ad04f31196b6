// The kiln binary, run as a user would: exit codes and what it prints.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/cli/cli_util.h"

namespace {

using Run = kiln::testing::KilnRun;
using kiln::testing::Kiln;
using kiln::testing::TempDir;

const char* kGood = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: hello-
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [echo, hello]}
)";

const char* kBad = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: bad-
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: train, template: step}
      - {name: evaluate, depends: trian, template: step}
  - name: step
    container: {image: busybox}
)";

}  // namespace

TEST_CASE("kiln lint exits 0 on a valid manifest and 1 with located errors", "[cli]") {
  TempDir dir;
  std::string good = dir.Write("good.yaml", kGood);
  std::string bad = dir.Write("bad.yaml", kBad);
  Run ok = Kiln("lint " + good);
  CHECK(ok.exit_code == 0);
  CHECK(ok.output == "1 file, 1 manifest: 0 errors, 0 warnings\n");
  Run fail = Kiln("lint " + bad);
  CHECK(fail.exit_code == 1);
  CHECK(fail.output == bad + ":12:35: spec.templates[0].dag.tasks[1].depends: unknown task \"trian\" (did you mean \"train\"?)\n"
                             "1 file, 1 manifest: 1 error, 0 warnings\n");
}

TEST_CASE("kiln lint walks directories and prints JSON with -o json", "[cli]") {
  TempDir dir;
  dir.Write("a.yaml", kGood);
  dir.Write("b.yml", kBad);
  dir.Write("notes.txt", "not yaml");
  Run r = Kiln("lint -o json " + dir.path.string());
  CHECK(r.exit_code == 1);
  nlohmann::json j = nlohmann::json::parse(r.output);
  CHECK(j["files"].size() == 2);
  CHECK(j["errors"] == 1);
  REQUIRE(j["diagnostics"].size() == 1);
  CHECK(j["diagnostics"][0]["line"] == 12);
  CHECK(j["diagnostics"][0]["column"] == 35);
  CHECK(j["diagnostics"][0]["path"] == "spec.templates[0].dag.tasks[1].depends");
  CHECK(j["diagnostics"][0]["severity"] == "error");
}

TEST_CASE("kiln lint --strict turns unknown fields into errors", "[cli]") {
  TempDir dir;
  std::string f = dir.Write("u.yaml", std::string(kGood) + "  serviceAcountName: x\n");
  Run lax = Kiln("lint " + f);
  CHECK(lax.exit_code == 0);
  CHECK(lax.output.find("warning: unknown field (did you mean \"serviceAccountName\"?)") != std::string::npos);
  Run strict = Kiln("lint --strict " + f);
  CHECK(strict.exit_code == 1);
}

TEST_CASE("kiln lint names a missing file and refuses an oversized one", "[cli]") {
  TempDir dir;
  Run missing = Kiln("lint " + (dir.path / "nope.yaml").string());
  CHECK(missing.exit_code == 1);
  CHECK(missing.output.find("nope.yaml: cannot read file: it does not exist or is not accessible") != std::string::npos);
  std::string big = dir.Write("big.yaml", std::string(4096, '#'));
  Run refused = Kiln("lint --max-file-size 1000 " + big);
  CHECK(refused.exit_code == 1);
  CHECK(refused.output.find("file is 4096 bytes, over the limit of 1000 bytes") != std::string::npos);
}

TEST_CASE("kiln version and --help", "[cli]") {
  Run v = Kiln("version");
  CHECK(v.exit_code == 0);
  CHECK(v.output.starts_with("kiln "));
  Run h = Kiln("lint --help");
  CHECK(h.exit_code == 0);
  CHECK(h.output.find("--strict") != std::string::npos);
  Run none = Kiln("");
  CHECK(none.exit_code != 0);
}
