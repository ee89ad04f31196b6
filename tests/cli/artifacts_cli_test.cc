// Key-only artifacts under `kiln run`: an artifact with only `s3: {key: ...}` lives in the
// default artifact repository, the local one (<data>/artifacts/keys/<key>). A map-reduce in
// miniature: one step writes a directory of parts under a prefix, a fan-out reads one part each
// and writes a result each, the last step reads every result back as one directory.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "tests/cli/cli_util.h"

namespace kiln::testing {

namespace {

bool SandboxWorks() {
  int code = 0;
  Capture("bwrap --ro-bind / / --dev /dev --proc /proc --unshare-pid --die-with-parent true 2>&1", &code);
  return code == 0;
}

const char* kMapReduce = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: keys}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: split, template: split}
      - name: map
        template: map
        depends: split
        withItems: ["0", "1", "2"]
        arguments:
          parameters: [{name: id, value: "{{item}}"}]
          artifacts: [{name: part, s3: {key: "{{workflow.name}}/parts/{{item}}.txt"}}]
      - {name: reduce, template: reduce, depends: map}
  - name: split
    script:
      image: busybox
      command: [sh]
      source: |
        mkdir /mnt/out && for i in 0 1 2; do echo "part $i" > /mnt/out/$i.txt; done
    outputs:
      artifacts:
      - {name: parts, path: /mnt/out, archive: {none: {}}, s3: {key: "{{workflow.name}}/parts/"}}
  - name: map
    inputs:
      parameters: [{name: id}]
      artifacts: [{name: part, path: /mnt/in/part.txt}]
    script:
      image: busybox
      command: [sh]
      source: |
        mkdir /mnt/out && tr a-z A-Z < /mnt/in/part.txt > /mnt/out/r.txt
    outputs:
      artifacts:
      - name: result
        path: /mnt/out/r.txt
        archive: {none: {}}
        s3: {key: "{{workflow.name}}/results/{{inputs.parameters.id}}.txt"}
  - name: reduce
    inputs:
      artifacts: [{name: results, path: /mnt/in, s3: {key: "{{workflow.name}}/results"}}]
    container:
      image: busybox
      command: [sh, -c, "mkdir /mnt/out && cat /mnt/in/0.txt /mnt/in/1.txt /mnt/in/2.txt > /mnt/out/all"]
    outputs:
      parameters:
      - {name: all, valueFrom: {path: /mnt/out/all}}
      artifacts:
      - {name: all, path: /mnt/in, s3: {key: "{{workflow.name}}/all.tgz"}}
)";

}  // namespace

TEST_CASE("key-only artifacts: parts under a prefix, results read back as a directory", "[cli][artifacts]") {
  if (!SandboxWorks()) {
    WARN("bubblewrap cannot run here: outputs outside /tmp need the sandbox; skipped");
    return;
  }
  TempDir d;
  std::string file = d.Write("wf.yaml", kMapReduce);
  KilnRun r = KilnStdout("run -o json --data-dir " + d.Path("data") + " " + file);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.output);
  CHECK(j["phase"] == "Succeeded");
  CHECK(j["nodes"]["keys.reduce"]["outputs"]["all"] == "PART 0\nPART 1\nPART 2");
  // Objects are files under <data>/artifacts/keys: archive none as they are, the default tar.gz.
  CHECK(ReadBytes(d.Path("data/artifacts/keys/keys/parts/1.txt")) == "part 1\n");
  CHECK(ReadBytes(d.Path("data/artifacts/keys/keys/results/2.txt")) == "PART 2\n");
  std::string tgz = ReadBytes(d.Path("data/artifacts/keys/keys/all.tgz"));
  REQUIRE(tgz.size() > 2);
  CHECK(tgz.substr(0, 2) == "\x1f\x8b");
}

TEST_CASE("key-only artifacts: a key that leaves the repository fails its step, naming it", "[cli][artifacts]") {
  TempDir d;
  std::string file = d.Write("wf.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: escape}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: write, template: write}
  - name: write
    container:
      image: busybox
      command: [sh, -c, "echo x > /tmp/f"]
    outputs:
      artifacts:
      - {name: f, path: /tmp/f, s3: {key: "../../{{workflow.name}}"}}
)");
  KilnRun r = KilnStdout("run -o json --data-dir " + d.Path("data") + " " + file);
  INFO(r.output);
  CHECK(r.exit_code == 1);
  auto j = nlohmann::json::parse(r.output);
  CHECK(j["phase"] != "Succeeded");
  CHECK(j["nodes"]["escape[0].write"]["message"] ==
        "output artifact \"f\": key \"../../escape\": \"..\" is not allowed in a key (keys are paths "
        "inside the artifact repository)");
  CHECK_FALSE(std::filesystem::exists(d.Path("escape")));

  // An input's key is refused the same way.
  std::string reader = d.Write("read.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: reader}
spec:
  entrypoint: read
  templates:
  - name: read
    inputs:
      artifacts: [{name: g, path: /tmp/g, s3: {key: /etc/passwd}}]
    container:
      image: busybox
      command: [cat, /tmp/g]
)");
  r = KilnStdout("run -o json --data-dir " + d.Path("data") + " " + reader);
  INFO(r.output);
  CHECK(r.exit_code == 1);
  j = nlohmann::json::parse(r.output);
  CHECK(j["nodes"]["reader"]["message"] ==
        "input artifact \"g\": key \"/etc/passwd\": a key must be relative (keys are paths inside the "
        "artifact repository)");
}

TEST_CASE("key-only artifacts: an optional input whose key holds nothing is left out", "[cli][artifacts]") {
  TempDir d;
  std::string file = d.Write("wf.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: optional}
spec:
  entrypoint: read
  templates:
  - name: read
    inputs:
      artifacts: [{name: g, path: /tmp/kiln-optional-input, optional: true, s3: {key: "{{workflow.name}}/none"}}]
    container:
      image: busybox
      command: [sh, -c, "test ! -e /tmp/kiln-optional-input"]
)");
  KilnRun r = KilnStdout("run -o json --data-dir " + d.Path("data") + " " + file);
  INFO(r.output);
  CHECK(r.exit_code == 0);
}

}  // namespace kiln::testing
