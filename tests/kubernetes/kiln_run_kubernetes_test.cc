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

TEST_CASE("kiln run --accelerators places a GPU step by a configured profile; a bad file is refused first",
          "[kubernetes][kubesim][cli][gpu]") {
  Kubesim sim("mixed-gpu.yaml");
  TempDir dir;
  kubesim::testing::WriteFile(dir / "wf.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: infer}
spec:
  entrypoint: main
  templates:
  - name: main
    metadata: {annotations: {kiln.dev/accelerator: "big-gpu, small-gpu", kiln.dev/pending-timeout: 200ms}}
    container: {image: cuda, command: [echo, trained], resources: {limits: {nvidia.com/gpu: "1"}}}
)");
  // big-gpu names a label no node has, so the step falls back to small-gpu.
  kubesim::testing::WriteFile(dir / "accelerators.yaml", R"(accelerators:
  big-gpu:
  - {nvidia.com/gpu.product: NVIDIA-B200}
  small-gpu:
  - {nvidia.com/gpu.product: Tesla-T4}
)");
  kubesim::testing::WriteFile(dir / "bad.yaml", "accelerators:\n  big-gpu: {a: b}\n");
  auto bad = kubesim::testing::Run({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", sim.kubeconfig(),
                                    "--accelerators", dir / "bad.yaml", "--data-dir", dir / "data", "--no-tree",
                                    dir / "wf.yaml"},
                                   dir.path());
  CHECK(bad.exit_code == 1);
  CHECK(bad.output == "kiln run: " + (dir / "bad.yaml") +
                          ":2:12: accelerators.big-gpu: expected a list of label sets, e.g. "
                          "[{nvidia.com/gpu.product: NVIDIA-L4}]\n");
  auto list = kubesim::testing::Run({KILN_BINARY, "list", "--data-dir", dir / "data"}, dir.path());
  CHECK(list.output.find("infer") == std::string::npos);  // nothing was recorded
  auto r = kubesim::testing::Run({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", sim.kubeconfig(),
                                  "--namespace", "default", "--accelerators", dir / "accelerators.yaml", "--data-dir",
                                  dir / "data", "--no-tree", dir / "wf.yaml"},
                                 dir.path());
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("0/5 nodes are available") != std::string::npos);
  CHECK(r.output.find("trying accelerator small-gpu") != std::string::npos);
  CHECK(r.output.find("workflow infer Succeeded") != std::string::npos);
}

}  // namespace kiln::executor
