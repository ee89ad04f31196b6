// `kiln run --executor kubernetes` end to end: the kiln binary against a kubesim.
#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "kube/client.h"
#include "kube/kubeconfig.h"

#include "tests/kubesim/test_util.h"

namespace kiln::executor {

using kubesim::testing::Kubesim;
using kubesim::testing::TempDir;

namespace {

// Reads the cluster's objects for the test's assertions, with a client of its own.
class ApiReader {
 public:
  explicit ApiReader(const Kubesim& sim) {
    auto config = kube::LoadKubeconfig(sim.kubeconfig());
    REQUIRE(config.has_value());
    auto client = kube::Client::Create(io_, *config);
    REQUIRE(client.has_value());
    client_ = std::move(*client);
  }
  kube::ApiResponse Get(const std::string& path) {
    std::optional<Result<kube::ApiResponse>> r;
    io_.restart();  // the last call ran it out of work
    boost::asio::co_spawn(
        io_, [&]() -> boost::asio::awaitable<void> { r = co_await client_->Call("GET", path); }, boost::asio::detached);
    while (!r) io_.run_one();
    REQUIRE(r->has_value());
    return **r;
  }

 private:
  boost::asio::io_context io_;
  std::unique_ptr<kube::Client> client_;
};

}  // namespace

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

// The issue's acceptance run: the example pipeline (examples/workflows/train-evaluate.yaml), its
// training steps made GPU steps (nvidia.com/gpu and kiln.dev/accelerator: a100-80gb), on the
// mixed-gpu cluster, with the agent and the artifact PVC, and cpuOnlySteps keeping the other
// steps off every GPU node. kubesim's kubelet runs the Python steps as real processes.
TEST_CASE("train-evaluate on mixed-gpu: GPU steps on A100 nodes, CPU steps off GPU nodes, artifacts flow",
          "[kubernetes][kubesim][cli][gpu][artifacts]") {
  using nlohmann::json;
  // stdout and stderr come together: the JSON document is from the first '{' to the last '}'.
  auto parse = [](const std::string& out) {
    size_t from = out.find('{'), to = out.rfind('}');
    INFO(out);
    REQUIRE((from != std::string::npos && to != std::string::npos));
    return json::parse(out.substr(from, to - from + 1));
  };
  TempDir dir, volumes;
  Kubesim sim("mixed-gpu.yaml", {"--image-dir", std::filesystem::path(KILN_BINARY).parent_path().string(),
                                 "--volume-dir", volumes.path()});
  // kiln sees the artifact PVC at <data dir>/artifacts, as deploy/ mounts it.
  const std::string pvc = volumes / "default/kiln-artifacts";
  std::filesystem::create_directories(pvc);
  std::filesystem::create_directories(dir / "data");
  std::filesystem::create_directory_symlink(pvc, dir / "data/artifacts");
  std::string wf = kubesim::testing::ReadFile(std::string(KILN_SOURCE_DIR) + "/examples/workflows/train-evaluate.yaml");
  auto replace = [&](const std::string& from, const std::string& to) {
    size_t at = wf.find(from);
    REQUIRE(at != std::string::npos);
    wf.replace(at, from.size(), to);
  };
  replace("\n    - name: train\n", "\n    - name: train\n      metadata: {annotations: {kiln.dev/accelerator: a100-80gb}}\n");
  replace("          requests: {cpu: 500m, memory: 128Mi}\n",
          "          requests: {cpu: 500m, memory: 128Mi}\n          limits: {nvidia.com/gpu: \"1\"}\n");
  kubesim::testing::WriteFile(dir / "wf.yaml", wf);
  kubesim::testing::WriteFile(dir / "accelerators.yaml",
                              "cpuOnlySteps:\n- {key: nvidia.com/gpu.product, operator: DoesNotExist}\n");
  auto r = kubesim::testing::Run({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", sim.kubeconfig(),
                                  "--namespace", "default", "--agent-path", KILN_BINARY, "--artifact-pvc",
                                  "kiln-artifacts", "--accelerators", dir / "accelerators.yaml", "--data-dir",
                                  dir / "data", "--no-tree", "-o", "json", dir / "wf.yaml"},
                                 dir.path());
  INFO(r.output << sim.log());
  REQUIRE(r.exit_code == 0);
  json run = parse(r.output);
  CHECK(run["phase"] == "Succeeded");

  // Placement, from the cluster's pods.
  boost::asio::io_context io;
  auto config = kube::LoadKubeconfig(sim.kubeconfig());
  REQUIRE(config.has_value());
  auto client = kube::Client::Create(io, *config);
  REQUIRE(client.has_value());
  std::optional<Result<kube::ApiResponse>> pods;
  boost::asio::co_spawn(
      io, [&]() -> boost::asio::awaitable<void> { pods = co_await (*client)->Call("GET", "/api/v1/namespaces/default/pods"); },
      boost::asio::detached);
  while (!pods) io.run_one();
  REQUIRE(pods->has_value());
  REQUIRE((*pods)->status == 200);
  size_t gpu_pods = 0, cpu_pods = 0;
  for (const json& pod : (*pods)->body["items"]) {
    const json& spec = pod["spec"];
    const std::string node = spec.value("nodeName", "");
    const json limits = spec["containers"][0].value("resources", json::object()).value("limits", json::object());
    bool gpu_toleration = false;
    for (const json& t : spec.value("tolerations", json::array())) gpu_toleration |= t.value("key", "") == "nvidia.com/gpu";
    const std::string affinity = spec.value("affinity", json::object()).dump();
    INFO(pod["metadata"]["name"] << " on " << node << ": " << affinity);
    if (limits.contains("nvidia.com/gpu")) {
      ++gpu_pods;
      CHECK(node.starts_with("a100-"));
      CHECK(gpu_toleration);
      CHECK(affinity.find("NVIDIA-A100-SXM4-80GB") != std::string::npos);
    } else {
      ++cpu_pods;
      CHECK(node.starts_with("cpu-"));
      CHECK_FALSE(gpu_toleration);
      CHECK(affinity.find("DoesNotExist") != std::string::npos);
    }
  }
  CHECK(gpu_pods == 3);  // train x 3 learning rates
  CHECK(cpu_pods == 3);  // generate, evaluate, promote

  // Parameters flowed (promote ran on evaluate's choice) and artifacts did: the dataset that
  // generate stored through the PVC is the input of every train step and of evaluate, by digest.
  auto got = kubesim::testing::Run({KILN_BINARY, "get", "--data-dir", dir / "data", "-o", "json", run["name"].get<std::string>()},
                                   dir.path());
  REQUIRE(got.exit_code == 0);
  json w = parse(got.output);
  std::set<std::string> datasets;
  size_t dataset_inputs = 0;
  for (const json& a : w["inputArtifacts"]) {
    if (a["name"] != "dataset") continue;
    ++dataset_inputs;
    datasets.insert(a["sha256"].get<std::string>());
  }
  CHECK(dataset_inputs == 4);
  REQUIRE(datasets.size() == 1);
  const std::string stored = pvc + "/" + *datasets.begin();
  REQUIRE(std::filesystem::exists(stored));
  CHECK(kubesim::testing::ReadFile(stored).starts_with("[["));  // generate's JSON rows
  size_t models = 0, metrics = 0;
  for (const json& a : w["outputs"]["artifacts"]) {
    models += a["name"] == "model";
    metrics += a["name"] == "metrics";
    CHECK(std::filesystem::exists(pvc + "/" + a["sha256"].get<std::string>()));
    CHECK(a["uri"].get<std::string>().find(a["sha256"].get<std::string>()) != std::string::npos);
  }
  CHECK(models == 3);
  CHECK(metrics == 1);
  bool promoted = false;
  for (const json& n : w["nodes"]) promoted |= n["displayName"] == "promote" && n["phase"] == "Succeeded";
  CHECK(promoted);
}

TEST_CASE("a step with artifacts and no artifact PVC or agent is refused with what to pass", "[kubernetes][kubesim][cli][artifacts]") {
  Kubesim sim("cpu-only.yaml");
  TempDir dir;
  kubesim::testing::WriteFile(dir / "wf.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: needs-pvc}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [sh, -c, "echo hi > /tmp/out"]}
    outputs: {artifacts: [{name: out, path: /tmp/out}]}
)");
  auto no_agent = kubesim::testing::Run({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", sim.kubeconfig(),
                                         "--namespace", "default", "--data-dir", dir / "data", "--no-tree",
                                         dir / "wf.yaml"},
                                        dir.path());
  INFO(no_agent.output);
  CHECK(no_agent.exit_code == 1);
  CHECK(no_agent.output.find("artifacts on Kubernetes need the kiln exec agent in the step's pod: run kiln with "
                             "--agent-image IMAGE (or --agent-path PATH)") != std::string::npos);
  auto no_pvc = kubesim::testing::Run({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", sim.kubeconfig(),
                                       "--namespace", "default", "--agent-path", KILN_BINARY, "--data-dir",
                                       dir / "data2", "--no-tree", dir / "wf.yaml"},
                                      dir.path());
  INFO(no_pvc.output);
  CHECK(no_pvc.exit_code == 1);
  CHECK(no_pvc.output.find("artifacts on Kubernetes need the artifact repository's volume: run kiln with "
                           "--artifact-pvc CLAIM") != std::string::npos);
}

TEST_CASE("a raw artifact and a script source reach the step as written: Kubernetes' $(VAR) and $$ leave them be",
          "[kubernetes][kubesim][cli][artifacts]") {
  Kubesim sim("cpu-only.yaml", {"--image-dir", std::filesystem::path(KILN_BINARY).parent_path().string()});
  TempDir dir;
  kubesim::testing::WriteFile(dir / "wf.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: raw-dollar}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: raw, template: raw}
      - {name: script, template: script}
  - name: raw
    inputs:
      artifacts:
      - {name: s, path: /tmp/s.sh, raw: {data: "echo $(HOME) $$ ${x}"}}
    container: {image: busybox, command: [cat, /tmp/s.sh]}
  - name: script
    script:
      image: busybox
      command: [sh]
      source: |
        printf '%s\n' '$(HOME) $$'
)");
  // Raw inputs only: no artifact claim is needed.
  auto r = kubesim::testing::Run({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", sim.kubeconfig(),
                                  "--namespace", "default", "--agent-path", KILN_BINARY, "--data-dir", dir / "data",
                                  "--no-tree", dir / "wf.yaml"},
                                 dir.path());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto raw = kubesim::testing::Run({KILN_BINARY, "logs", "--data-dir", dir / "data", "raw-dollar", "raw"}, dir.path());
  CHECK(raw.output == "echo $(HOME) $$ ${x}\n");
  auto script = kubesim::testing::Run({KILN_BINARY, "logs", "--data-dir", dir / "data", "raw-dollar", "script"}, dir.path());
  CHECK(script.output == "$(HOME) $$\n");
}

TEST_CASE("volumeClaimTemplates: kiln makes the workflow's claim, steps share it, volumeClaimGC decides when it goes",
          "[kubernetes][kubesim][cli][volumes]") {
  using nlohmann::json;
  TempDir dir;
  Kubesim sim("cpu-only.yaml", {"--volume-dir", dir / "claims"});
  auto write = [&](const std::string& name, const std::string& last_command, const std::string& gc) {
    kubesim::testing::WriteFile(dir / (name + ".yaml"), "apiVersion: argoproj.io/v1alpha1\n"
                                                        "kind: Workflow\n"
                                                        "metadata: {name: " + name + "}\n"
                                                        "spec:\n"
                                                        "  entrypoint: main\n" + gc +
                                                        "  volumeClaimTemplates:\n"
                                                        "  - metadata: {name: workdir, labels: {team: ml}}\n"
                                                        "    spec:\n"
                                                        "      accessModes: [ReadWriteOnce]\n"
                                                        "      resources: {requests: {storage: 1Gi}}\n"
                                                        "  templates:\n"
                                                        "  - name: main\n"
                                                        "    steps:\n"
                                                        "    - - {name: write, template: write}\n"
                                                        "    - - {name: read, template: read}\n"
                                                        "  - name: write\n"
                                                        "    container:\n"
                                                        "      image: busybox\n"
                                                        "      command: [sh, -c, 'echo shared > /work/f']\n"
                                                        "      volumeMounts: [{name: workdir, mountPath: /work}]\n"
                                                        "  - name: read\n"
                                                        "    container:\n"
                                                        "      image: busybox\n"
                                                        "      command: [sh, -c, '" + last_command + "']\n"
                                                        "      volumeMounts: [{name: workdir, mountPath: /work}]\n");
  };
  auto run = [&](const std::string& name, const std::string& data = "data") {
    return kubesim::testing::Run({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", sim.kubeconfig(),
                                  "--namespace", "default", "--data-dir", dir / data, "--no-tree",
                                  dir / (name + ".yaml")},
                                 dir.path());
  };
  ApiReader api(sim);
  auto get = [&](const std::string& path) { return api.Get(path); };

  // Succeeded, default strategy (OnWorkflowSuccess): the claim was made, shared, and is gone.
  write("vct-ok", "cat /work/f", "");
  auto ok = run("vct-ok");
  INFO(ok.output);
  REQUIRE(ok.exit_code == 0);
  auto log = kubesim::testing::Run({KILN_BINARY, "logs", "--data-dir", dir / "data", "vct-ok", "read"}, dir.path());
  CHECK(log.output == "shared\n");
  CHECK(std::filesystem::exists(dir / "claims/default/vct-ok-workdir/f"));
  CHECK(get("/api/v1/namespaces/default/persistentvolumeclaims/vct-ok-workdir").status == 404);
  auto pods = get("/api/v1/namespaces/default/pods");
  bool mounted = false;
  for (const json& pod : pods.body["items"]) {
    for (const json& v : pod["spec"].value("volumes", json::array())) {
      if (v.contains("persistentVolumeClaim") && v["persistentVolumeClaim"].value("claimName", "") == "vct-ok-workdir") mounted = true;
    }
  }
  CHECK(mounted);

  // Failed, default strategy: the claim stays for a look, with the template's and kiln's labels.
  write("vct-failed", "cat /work/f; exit 3", "");
  auto failed = run("vct-failed");
  INFO(failed.output);
  CHECK(failed.exit_code != 0);
  auto kept = get("/api/v1/namespaces/default/persistentvolumeclaims/vct-failed-workdir");
  REQUIRE(kept.status == 200);
  CHECK(kept.body["metadata"]["labels"]["team"] == "ml");
  CHECK(kept.body["metadata"]["labels"]["kiln.dev/workflow"] == "vct-failed");
  CHECK(kept.body["metadata"]["labels"].contains("kiln.dev/workflow-uid"));
  CHECK(kept.body["spec"]["resources"]["requests"]["storage"] == "1Gi");
  CHECK(failed.output.find("delete pvc -l kiln.dev/workflow-uid=") != std::string::npos);

  // The same name again, from another data directory (another kiln): the kept claim is an
  // earlier run's, so it is not taken over.
  auto again = run("vct-failed", "data2");
  INFO(again.output);
  CHECK(again.exit_code != 0);
  CHECK(again.output.find("PersistentVolumeClaim vct-failed-workdir (spec.volumeClaimTemplates) already exists, left by "
                          "an earlier run") != std::string::npos);
  CHECK(again.output.find("kubectl -n default delete pvc vct-failed-workdir") != std::string::npos);

  // Failed, OnWorkflowCompletion: it goes anyway.
  write("vct-gc", "exit 3", "  volumeClaimGC: {strategy: OnWorkflowCompletion}\n");
  auto gc = run("vct-gc");
  INFO(gc.output);
  CHECK(gc.exit_code != 0);
  CHECK(get("/api/v1/namespaces/default/persistentvolumeclaims/vct-gc-workdir").status == 404);
}

TEST_CASE("resource templates act on the API: create, wait for a condition, read outputs, patch, delete by selector",
          "[kubernetes][kubesim][cli][resource]") {
  using nlohmann::json;
  TempDir dir;
  Kubesim sim("cpu-only.yaml");
  kubesim::testing::WriteFile(dir / "res.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: res-flow}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: make, template: make-config}
    - - {name: job, template: run-job}
    - - name: patch
        template: patch-config
        arguments: {parameters: [{name: cm, value: "{{steps.make.outputs.parameters.name}}"}]}
    - - name: read
        template: read-config
        arguments: {parameters: [{name: cm, value: "{{steps.make.outputs.parameters.name}}"}]}
    - - name: show
        template: show
        arguments:
          parameters:
          - {name: patched, value: "{{steps.read.outputs.parameters.patched}}"}
          - {name: succeeded, value: "{{steps.job.outputs.parameters.succeeded}}"}
          - {name: job, value: "{{steps.job.outputs.parameters.job}}"}
    - - {name: cleanup, template: cleanup}
  - name: make-config
    resource:
      action: create
      manifest: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: res-config, labels: {cleanup: "true"}}
        data: {key: value}
    outputs:
      parameters:
      - name: name
        valueFrom: {jsonPath: '{.metadata.name}'}
  - name: run-job
    resource:
      action: create
      successCondition: status.succeeded > 0
      failureCondition: status.failed > 0
      manifest: |
        apiVersion: batch/v1
        kind: Job
        metadata: {generateName: res-job-}
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers: [{name: c, image: busybox, command: [sh, -c, "echo done"]}]
    outputs:
      parameters:
      - name: succeeded
        valueFrom: {jsonPath: '{.status.succeeded}'}
      - name: job
        valueFrom: {jsonPath: '{.metadata.name}'}
  - name: patch-config
    inputs: {parameters: [{name: cm}]}
    resource:
      action: patch
      mergeStrategy: merge
      flags: [configmap, "{{inputs.parameters.cm}}"]
      manifest: '{"data": {"patched": "yes"}}'
  - name: read-config
    inputs: {parameters: [{name: cm}]}
    resource:
      action: get
      successCondition: data.patched == yes
      manifest: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "{{inputs.parameters.cm}}"}
    outputs:
      parameters:
      - name: patched
        valueFrom: {jsonPath: 'patched={.data.patched} key={.data.key}'}
  - name: show
    inputs: {parameters: [{name: patched}, {name: succeeded}, {name: job}]}
    container:
      image: busybox
      command: [echo, "{{inputs.parameters.patched}} succeeded={{inputs.parameters.succeeded}} {{inputs.parameters.job}}"]
  - name: cleanup
    resource:
      action: delete
      flags: [configmap, --selector, cleanup=true]
)");
  auto run = [&](const std::string& file, const std::string& executor = "kubernetes") {
    return kubesim::testing::Run({KILN_BINARY, "run", "--executor", executor, "--kubeconfig", sim.kubeconfig(),
                                  "--namespace", "default", "--data-dir", dir / ("data-" + executor), "--no-tree",
                                  dir / file},
                                 dir.path());
  };
  ApiReader api(sim);
  auto get = [&](const std::string& path) { return api.Get(path); };

  auto ok = run("res.yaml");
  INFO(ok.output);
  REQUIRE(ok.exit_code == 0);
  auto log = kubesim::testing::Run({KILN_BINARY, "logs", "--data-dir", dir / "data-kubernetes", "res-flow", "show"},
                                   dir.path());
  INFO(log.output);
  CHECK(log.output.starts_with("patched=yes key=value succeeded=1 res-job-"));
  // The Job the step created ran to completion, and carries kiln's annotations; the ConfigMap
  // was deleted by its label.
  auto jobs = get("/apis/batch/v1/namespaces/default/jobs");
  int created = 0;
  for (const json& job : jobs.body["items"]) {
    if (!job["metadata"].value("name", "").starts_with("res-job-")) continue;
    ++created;
    CHECK(job["status"].value("succeeded", 0) == 1);
    CHECK(job["metadata"]["annotations"]["kiln.dev/node"] == "res-flow[1].job");
  }
  CHECK(created == 1);
  CHECK(get("/api/v1/namespaces/default/configmaps/res-config").status == 404);
  CHECK(ok.output.find("configmaps -l cleanup=true: 1 deleted") != std::string::npos);

  // failureCondition: the Job's pod fails, so the step fails with the condition as its reason.
  kubesim::testing::WriteFile(dir / "fail.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: res-fail}
spec:
  entrypoint: run-job
  templates:
  - name: run-job
    resource:
      action: create
      successCondition: status.succeeded > 0
      failureCondition: status.failed > 0, status.active > 5
      manifest: |
        apiVersion: batch/v1
        kind: Job
        metadata: {name: res-fail-job}
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers: [{name: c, image: busybox, command: [sh, -c, "exit 2"]}]
)");
  auto fail = run("fail.yaml");
  INFO(fail.output);
  CHECK(fail.exit_code != 0);
  // As in Argo, any one failure requirement that holds fails the step.
  CHECK(fail.output.find("failure condition \"status.failed > 0, status.active > 5\" matched on jobs/res-fail-job") !=
        std::string::npos);

  // apply creates, then merges and drops what the manifest no longer has (kubectl's
  // last-applied annotation); a failureCondition alone succeeds at once when it does not hold;
  // a step waiting on its condition is killed at its deadline.
  auto apply_workflow = [&](const std::string& name, const std::string& data) {
    kubesim::testing::WriteFile(dir / (name + ".yaml"), R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: )" + name + R"(}
spec:
  entrypoint: apply
  templates:
  - name: apply
    resource:
      action: apply
      failureCondition: data.broken
      manifest: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: applied}
        data: )" + data + R"(
)");
  };
  apply_workflow("apply-1", "{a: \"1\", b: \"2\"}");
  auto first = run("apply-1.yaml");
  INFO(first.output);
  CHECK(first.exit_code == 0);
  apply_workflow("apply-2", "{a: \"10\"}");
  auto second = run("apply-2.yaml");
  INFO(second.output);
  CHECK(second.exit_code == 0);
  auto applied = get("/api/v1/namespaces/default/configmaps/applied");
  REQUIRE(applied.status == 200);
  CHECK(applied.body["data"] == json{{"a", "10"}});
  CHECK(applied.body["metadata"]["annotations"].contains("kubectl.kubernetes.io/last-applied-configuration"));

  kubesim::testing::WriteFile(dir / "wait.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: res-wait}
spec:
  entrypoint: wait
  templates:
  - name: wait
    activeDeadlineSeconds: 1
    resource:
      action: get
      successCondition: data.never == x
      flags: [cm, applied]
)");
  auto wait = run("wait.yaml");
  INFO(wait.output);
  CHECK(wait.exit_code != 0);
  CHECK(wait.output.find("workflow res-wait Failed: Step exceeded its deadline") != std::string::npos);

  // What the API refuses, and what kiln does not do, are the step's error, named.
  kubesim::testing::WriteFile(dir / "bad.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: res-bad}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: missing, template: get-missing, continueOn: {failed: true}}
      - {name: crd, template: no-crd, continueOn: {failed: true}}
  - name: get-missing
    resource:
      action: get
      manifest: '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nowhere"}}'
  - name: no-crd
    resource:
      action: create
      manifest: '{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}'
)");
  auto bad = run("bad.yaml");
  INFO(bad.output);
  CHECK(bad.output.find("GET /api/v1/namespaces/default/configmaps/nowhere") != std::string::npos);
  CHECK(bad.output.find("the server does not serve apiVersion example.com/v1") != std::string::npos);
  // A flag kiln does not take is refused by the lint, before anything runs.
  kubesim::testing::WriteFile(dir / "flag.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: res-flag}
spec:
  entrypoint: bad-flag
  templates:
  - name: bad-flag
    resource:
      action: delete
      flags: [configmap, x, --dry-run=client]
)");
  auto flag = run("flag.yaml");
  INFO(flag.output);
  CHECK(flag.exit_code != 0);
  CHECK(flag.output.find("spec.templates[0].resource.flags: resource.flags: unsupported flag \"--dry-run=client\"") !=
        std::string::npos);
  CHECK(flag.output.find("nothing was run") != std::string::npos);

  // The local executor has no cluster: the step says how to run it.
  auto local = run("fail.yaml", "local");
  INFO(local.output);
  CHECK(local.exit_code != 0);
  CHECK(local.output.find("a resource template acts on a Kubernetes cluster's API: run the workflow with kiln run "
                          "--executor kubernetes") != std::string::npos);
}

TEST_CASE("Argo's resource examples from the corpus run on kubesim, or say what kiln does not do",
          "[kubernetes][kubesim][cli][resource][corpus]") {
  TempDir dir;
  Kubesim sim("cpu-only.yaml");
  auto run = [&](const std::string& file) {
    return kubesim::testing::Run({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", sim.kubeconfig(),
                                  "--namespace", "default", "--data-dir", dir / "data", "--no-tree",
                                  std::string(KILN_CORPUS_DIR) + "/" + file},
                                 dir.path());
  };
  ApiReader api(sim);
  // A ConfigMap created, then deleted by its label through kubectl-style flags.
  auto flags = run("resource-delete-with-flags.yaml");
  INFO(flags.output);
  CHECK(flags.exit_code == 0);
  CHECK(flags.output.find("configmaps -l cleanup=true: 1 deleted") != std::string::npos);
  CHECK(api.Get("/api/v1/namespaces/default/configmaps/resource-delete-with-flags").status == 404);
  // setOwnerReference needs the Workflow object Argo keeps in the cluster.
  auto owner = run("k8s-set-owner-reference.yaml");
  INFO(owner.output);
  CHECK(owner.exit_code != 0);
  CHECK(owner.output.find("resource.setOwnerReference makes the object owned by the Workflow object") !=
        std::string::npos);
  // {{pod.name}}: Argo's kubectl runs in a pod; kiln runs none for a resource step.
  auto pod = run("k8s-patch-pod.yaml");
  INFO(pod.output);
  CHECK(pod.exit_code != 0);
  CHECK(pod.output.find("{{pod.name}} in a resource template: kiln acts on the API itself") != std::string::npos);
  // A Workflow object: kubesim serves no argoproj.io types (nor does a cluster without Argo's CRDs).
  auto workflow = run("k8s-wait-wf.yaml");
  INFO(workflow.output);
  CHECK(workflow.exit_code != 0);
  CHECK(workflow.output.find("the server does not serve apiVersion argoproj.io/v1alpha1") != std::string::npos);
}

TEST_CASE("outputs too large for a termination message come back through the artifact repository",
          "[kubernetes][kubesim][cli][artifacts][agent]") {
  TempDir dir, volumes;
  Kubesim sim("cpu-only.yaml", {"--image-dir", std::filesystem::path(KILN_BINARY).parent_path().string(),
                                "--volume-dir", volumes.path()});
  const std::string pvc = volumes / "default/kiln-artifacts";
  std::filesystem::create_directories(pvc);
  std::filesystem::create_directories(dir / "data");
  std::filesystem::create_directory_symlink(pvc, dir / "data/artifacts");
  // 6,000 bytes of stdout and a 5,000-byte output parameter: 11 KB of outputs, more than the
  // 4,096 bytes Kubernetes keeps of a termination message; the next step gets both whole.
  kubesim::testing::WriteFile(dir / "big.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: big-outputs}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: produce, template: produce}
    - - name: consume
        template: consume
        arguments:
          parameters:
          - {name: result, value: "{{steps.produce.outputs.result}}"}
          - {name: param, value: "{{steps.produce.outputs.parameters.big}}"}
  - name: produce
    container:
      image: busybox
      command: [sh, -c, "head -c 6000 /dev/zero | tr '\\0' r; head -c 5000 /dev/zero | tr '\\0' p > /tmp/big"]
    outputs:
      parameters:
      - name: big
        valueFrom: {path: /tmp/big}
  - name: consume
    inputs: {parameters: [{name: result}, {name: param}]}
    container:
      image: busybox
      command: [sh, -c, 'echo "${#R} ${#P}"']
      env:
      - {name: R, value: "{{inputs.parameters.result}}"}
      - {name: P, value: "{{inputs.parameters.param}}"}
)");
  auto r = kubesim::testing::Run({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", sim.kubeconfig(),
                                  "--namespace", "default", "--agent-path", KILN_BINARY, "--artifact-pvc",
                                  "kiln-artifacts", "--data-dir", dir / "data", "--no-tree", dir / "big.yaml"},
                                 dir.path());
  INFO(r.output << sim.log());
  REQUIRE(r.exit_code == 0);
  auto log = kubesim::testing::Run({KILN_BINARY, "logs", "--data-dir", dir / "data", "big-outputs", "consume"},
                                   dir.path());
  CHECK(log.output == "6000 5000\n");
}

}  // namespace kiln::executor
