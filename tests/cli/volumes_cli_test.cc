// Volumes on the local executor: volumeClaimTemplates and emptyDir live per workflow,
// persistentVolumeClaim volumes under <data>/volumes/<claimName> (kept across workflows), and
// kinds that need Kubernetes fail their step with a clear message.
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

const char* kShared = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: volumes}
spec:
  entrypoint: main
  volumeClaimTemplates:
  - metadata: {name: workdir}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  volumes:
  - name: cache
    persistentVolumeClaim: {claimName: model-cache}
  templates:
  - name: main
    steps:
    - - {name: write, template: write}
    - - {name: read, template: read}
  - name: write
    container:
      image: busybox
      command: [sh, -c, "echo shared-text > /mnt/work/file && echo cached > /cache/c"]
      volumeMounts:
      - {name: workdir, mountPath: /mnt/work}
      - {name: cache, mountPath: /cache}
  - name: read
    container:
      image: busybox
      command: [sh, -c, "cat /mnt/work/file"]
      volumeMounts:
      - {name: workdir, mountPath: /mnt/work, readOnly: true}
    outputs:
      parameters:
      - {name: text, valueFrom: {path: /mnt/work/file}}
)";

}  // namespace

TEST_CASE("volumes: a claim template is shared by the workflow's steps, a PVC persists", "[cli][volumes]") {
  if (!SandboxWorks()) {
    WARN("bubblewrap cannot run here: volume mounts need the sandbox; skipped");
    return;
  }
  TempDir d;
  std::string file = d.Write("wf.yaml", kShared);
  KilnRun r = KilnStdout("run -o json --data-dir " + d.Path("data") + " " + file);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.output);
  CHECK(j["nodes"]["volumes[1].read"]["outputs"]["text"] == "shared-text");
  CHECK(ReadBytes(d.Path("data/volumes/model-cache/c")) == "cached\n");
}

TEST_CASE("volumes: kinds that need Kubernetes fail the step saying so", "[cli][volumes]") {
  if (!SandboxWorks()) {
    WARN("bubblewrap cannot run here: volume mounts need the sandbox; skipped");
    return;
  }
  TempDir d;
  std::string file = d.Write("wf.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: cm}
spec:
  entrypoint: main
  volumes:
  - name: conf
    configMap: {name: settings}
  templates:
  - name: main
    container:
      image: busybox
      command: [cat, /etc/conf/x]
      volumeMounts: [{name: conf, mountPath: /etc/conf}]
)");
  KilnRun r = Kiln("run --data-dir " + d.Path("data") + " " + file);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("volume \"conf\": configMap volumes need Kubernetes") != std::string::npos);
}

}  // namespace kiln::testing
