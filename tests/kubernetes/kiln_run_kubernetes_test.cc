// `kiln run --executor kubernetes` end to end: the kiln binary against a kubesim.
#include <catch2/catch.hpp>

#include "tests/kubesim/test_util.h"

namespace kiln::executor {

using kubesim::testing::Kubesim;
using kubesim::testing::TempDir;

TEST_CASE("kiln run --executor kubernetes runs a workflow on the cluster", "[kubernetes][kubesim][cli]") {
  Kubesim sim("cpu-only.yaml");
  TempDir dir;
  kubesim::testing::WriteFile(dir / "wf.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: cli-two}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: first, template: echo}
    - - {name: second, template: echo}
  - name: echo
    container: {image: busybox, command: [echo, hi]}
)");
  auto r = kubesim::testing::Run({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", sim.kubeconfig(),
                                  "--namespace", "default", "--data-dir", dir / "data", "--no-tree", dir / "wf.yaml"},
                                 dir.path());
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("workflow cli-two Succeeded") != std::string::npos);
  CHECK(r.output.find("cli-two[1].second") != std::string::npos);
}

TEST_CASE("kiln run --executor kubernetes with a missing kubeconfig says so before starting", "[kubernetes][cli]") {
  TempDir dir;
  kubesim::testing::WriteFile(dir / "wf.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: w}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [echo, hi]}
)");
  auto r = kubesim::testing::Run({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", dir / "missing",
                                  "--data-dir", dir / "data", "--no-tree", dir / "wf.yaml"},
                                 dir.path());
  CHECK(r.exit_code == 1);
  CHECK(r.output == "kiln run: kubeconfig " + (dir / "missing") + ": cannot read the file\n");
}

}  // namespace kiln::executor
