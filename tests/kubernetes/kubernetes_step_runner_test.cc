// The Kubernetes executor against kubesim: workflows driven by the scheduler's Driver with the
// KubernetesStepRunner, Jobs read back from the API. kubesim's kubelet runs a step's command as a
// local process, or follows the pod's script annotations when it has them (docs/kubesim.md):
// kubesim.kiln.dev/exit-code, duration, termination-message.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

#include <filesystem>
#include <set>
#include <sstream>

#include "dag/parse.h"
#include "executor/kubernetes_step_runner.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "scheduler/controller.h"
#include "scheduler/driver.h"
#include "tests/kubesim/test_util.h"

namespace kiln::executor {

namespace asio = boost::asio;
using kubesim::testing::Kubesim;
using kubesim::testing::TempDir;
using nlohmann::json;

namespace {

// A kubesim, a client on a test io_context, and workflows run to their end on it.
class Cluster {
 public:
  explicit Cluster(const std::string& cluster_file, std::vector<std::string> kubesim_flags = {},
                   kube::ClientOptions client_options = {})
      : sim_(cluster_file, std::move(kubesim_flags)) {
    auto config = kube::LoadKubeconfig(sim_.kubeconfig());
    REQUIRE(config.has_value());
    auto client = kube::Client::Create(io_, *config, std::move(client_options));
    REQUIRE(client.has_value());
    client_ = std::move(*client);
  }

  // Runs the Workflow in `yaml` to its end. `on_change` sees every transition (it may post
  // events). A bound of 60 s stops a run that hangs (a failure, never the synchronisation).
  const scheduler::WorkflowState& Run(const std::string& yaml,
                                      std::function<void(scheduler::Driver&, const scheduler::WorkflowState&)> on_change = {}) {
    dag::Diagnostics diags;
    manifests_.push_back(std::make_unique<std::vector<dag::Manifest>>(
        dag::ParseManifests("wf.yaml", yaml, dag::ParseOptions{}, diags)));
    REQUIRE_FALSE(diags.has_errors());
    const dag::Manifest& m = manifests_.back()->back();
    library_.Add(m);
    auto state = scheduler::NewWorkflow(m, library_, "uid-" + std::to_string(manifests_.size()), {});
    REQUIRE(state.has_value());
    states_.push_back(std::make_unique<scheduler::WorkflowState>(std::move(*state)));
    scheduler::WorkflowState& s = *states_.back();
    KubernetesOptions options;
    options.job.namespace_ = "default";
    options.job.workflow = s.name;
    options.job.workflow_uid = s.uid;
    options.job.spec = &m.spec;
    options.job.accelerators = accelerators;
    options.job.agent_path = agent_path;
    KubernetesStepRunner runner(*client_, options);
    scheduler::Driver* driver_ptr = nullptr;
    auto recorder = [](const scheduler::WorkflowState&, const scheduler::Event&, const scheduler::Transition&) -> Result<void> {
      return {};
    };
    auto observer = [&](const scheduler::WorkflowState& after, const scheduler::Transition&) {
      if (scheduler::IsDone(after.phase)) {
        io_.stop();
      } else if (on_change && driver_ptr) {
        on_change(*driver_ptr, after);
      }
    };
    scheduler::Driver driver(io_, s, library_, runner, recorder, observer);
    driver_ptr = &driver;
    asio::steady_timer bound(io_, std::chrono::seconds(60));
    bool timed_out = false;
    bound.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) {
        timed_out = true;
        io_.stop();
      }
    });
    io_.restart();
    driver.Start();
    io_.run();
    bound.cancel();
    REQUIRE_FALSE(timed_out);
    return s;
  }

  // A blocking API call for assertions.
  kube::ApiResponse Api(const std::string& method, const std::string& target, std::optional<json> body = std::nullopt) {
    std::optional<Result<kube::ApiResponse>> out;
    asio::co_spawn(io_, [&]() -> asio::awaitable<void> { out = co_await client_->Call(method, target, body); },
                   asio::detached);
    io_.restart();
    while (!out) io_.run_one();
    REQUIRE(out->has_value());
    return **out;
  }
  // The workflow's Jobs, sorted by name.
  std::vector<json> Jobs(const std::string& workflow) {
    kube::ApiResponse r = Api("GET", "/apis/batch/v1/namespaces/default/jobs?labelSelector=" +
                                         kube::UrlEncode("kiln.dev/workflow=" + workflow));
    REQUIRE(r.status == 200);
    std::vector<json> jobs(r.body["items"].begin(), r.body["items"].end());
    std::sort(jobs.begin(), jobs.end(), [](const json& a, const json& b) {
      return a["metadata"]["name"].get<std::string>() < b["metadata"]["name"].get<std::string>();
    });
    return jobs;
  }
  std::vector<json> PodsOf(const std::string& job) {
    kube::ApiResponse r = Api("GET", "/api/v1/namespaces/default/pods?labelSelector=" + kube::UrlEncode("job-name=" + job));
    REQUIRE(r.status == 200);
    return std::vector<json>(r.body["items"].begin(), r.body["items"].end());
  }

  const AcceleratorProfiles* accelerators = nullptr;  // for the next runs; built-in when null
  const Kubesim& sim() const { return sim_; }
  std::string agent_path;  // the kiln exec agent for the next runs (none when empty)
  kube::Client& client() { return *client_; }

 private:
  Kubesim sim_;
  asio::io_context io_;
  std::unique_ptr<kube::Client> client_;
  std::vector<std::unique_ptr<std::vector<dag::Manifest>>> manifests_;
  dag::TemplateLibrary library_;
  std::vector<std::unique_ptr<scheduler::WorkflowState>> states_;
};

const scheduler::NodeState& NodeNamed(const scheduler::WorkflowState& s, const std::string& name) {
  for (const auto& [id, n] : s.nodes) {
    if (n.name == name) return n;
  }
  FAIL("no node named " << name);
  throw std::logic_error("unreachable");
}

std::string Wf(const std::string& name, const std::string& spec) {
  return "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: " + name + "}\nspec:\n" + spec;
}

}  // namespace

TEST_CASE("a two-step workflow runs as one Job per step and passes outputs on", "[kubernetes][kubesim]") {
  Cluster cluster("cpu-only.yaml");
  const auto& s = cluster.Run(Wf("two", R"(
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: first, template: produce}
    - - name: second
        template: consume
        arguments: {parameters: [{name: x, value: "{{steps.first.outputs.parameters.x}}"}]}
  - name: produce
    activeDeadlineSeconds: 600
    metadata:
      labels: {team: ml}
      annotations: {kubesim.kiln.dev/termination-message: '{"parameters": {"x": "42"}, "result": "hello"}'}
    outputs: {parameters: [{name: x, valueFrom: {path: /tmp/x}}]}
    container: {image: busybox, command: [sh, -c, "echo 42 > /tmp/x"]}
  - name: consume
    inputs: {parameters: [{name: x}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.x}}"]}
)"));
  CHECK(s.phase == scheduler::Phase::kSucceeded);
  CHECK(NodeNamed(s, "first").outputs.at("x") == "42");
  CHECK(NodeNamed(s, "first").result == "hello");
  CHECK(NodeNamed(s, "second").exit_code == 0);

  std::vector<json> jobs = cluster.Jobs("two");
  REQUIRE(jobs.size() == 2);
  std::map<std::string, json> by_node;
  for (const json& j : jobs) by_node[j["metadata"]["annotations"]["kiln.dev/node"].get<std::string>()] = j;
  const std::string first_id = NodeNamed(s, "first").id, second_id = NodeNamed(s, "second").id;
  REQUIRE(by_node.count(first_id));
  REQUIRE(by_node.count(second_id));
  const json& first = by_node[first_id];
  CHECK(first["metadata"]["name"] == JobName("uid-1", first_id, 0));
  CHECK(first["metadata"]["labels"]["kiln.dev/workflow"] == "two");
  CHECK(first["metadata"]["labels"]["kiln.dev/node"] == LabelValue(first_id));
  CHECK(first["metadata"]["labels"]["kiln.dev/attempt"] == "0");
  CHECK(first["spec"]["backoffLimit"] == 0);
  CHECK(first["spec"]["activeDeadlineSeconds"] == 600);
  CHECK(first["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["type"] == "DisruptionTarget");
  CHECK(first["spec"]["template"]["spec"]["restartPolicy"] == "Never");
  CHECK(first["spec"]["template"]["metadata"]["labels"]["team"] == "ml");
  bool complete = false;
  for (const json& c : first["status"]["conditions"]) complete = complete || c["type"] == "Complete";
  CHECK(complete);
  const json& second = by_node[second_id];
  CHECK(second["spec"]["template"]["spec"]["containers"][0]["command"] == json{"echo", "42"});
}

TEST_CASE("a failing step fails the workflow with its exit code", "[kubernetes][kubesim]") {
  Cluster cluster("cpu-only.yaml");
  const auto& s = cluster.Run(Wf("fails", R"(
  entrypoint: main
  templates:
  - name: main
    metadata: {annotations: {kubesim.kiln.dev/exit-code: "3"}}
    container: {image: busybox, command: [sh, -c, "exit 3"]}
)"));
  CHECK(s.phase == scheduler::Phase::kFailed);
  const scheduler::NodeState& n = s.nodes.at(s.root);
  CHECK(n.phase == scheduler::Phase::kFailed);
  CHECK(n.exit_code == 3);
  CHECK(n.message == "Error (exit code 3)");
  std::vector<json> jobs = cluster.Jobs("fails");
  REQUIRE(jobs.size() == 1);
  bool failed = false;
  for (const json& c : jobs[0]["status"]["conditions"]) failed = failed || c["type"] == "Failed";
  CHECK(failed);
  CHECK(jobs[0]["status"]["failed"] == 1);  // backoffLimit 0: one pod, no retry by the Job
}

TEST_CASE("retryStrategy makes a new Job per attempt", "[kubernetes][kubesim]") {
  Cluster cluster("cpu-only.yaml");
  const auto& s = cluster.Run(Wf("retries", R"(
  entrypoint: main
  templates:
  - name: main
    retryStrategy: {limit: 2}
    metadata: {annotations: {kubesim.kiln.dev/exit-code: "1"}}
    container: {image: busybox, command: [sh, -c, "exit 1"]}
)"));
  CHECK(s.phase == scheduler::Phase::kFailed);
  std::vector<json> jobs = cluster.Jobs("retries");
  REQUIRE(jobs.size() == 3);
  std::set<std::string> attempts, names;
  for (const json& j : jobs) {
    attempts.insert(j["metadata"]["labels"]["kiln.dev/attempt"].get<std::string>());
    names.insert(j["metadata"]["name"].get<std::string>());
  }
  CHECK(attempts == std::set<std::string>{"0", "1", "2"});
  CHECK(names.size() == 3);
}

TEST_CASE("a GPU step gets the toleration and lands on a tainted GPU node", "[kubernetes][kubesim]") {
  Cluster cluster("mixed-gpu.yaml");
  const auto& s = cluster.Run(Wf("gpu", R"(
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: train, template: train}
      - {name: prep, template: prep}
  - name: train
    nodeSelector: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}
    metadata: {annotations: {kubesim.kiln.dev/exit-code: "0"}}  # simulated: no nvidia-smi here
    container:
      image: cuda
      command: [nvidia-smi]
      resources: {limits: {nvidia.com/gpu: "2"}}
  - name: prep
    container: {image: busybox, command: [echo, prep]}
)"));
  CHECK(s.phase == scheduler::Phase::kSucceeded);
  std::string train_job = JobName("uid-1", NodeNamed(s, "train").id, 0);
  std::string prep_job = JobName("uid-1", NodeNamed(s, "prep").id, 0);
  std::vector<json> jobs = cluster.Jobs("gpu");
  REQUIRE(jobs.size() == 2);
  // The API server adds its default not-ready/unreachable tolerations; count the GPU ones.
  const json gpu_toleration = json::parse(R"({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})");
  for (const json& j : jobs) {
    const json tolerations = j["spec"]["template"]["spec"].value("tolerations", json::array());
    size_t gpu = 0;
    for (const json& t : tolerations) gpu += t.value("key", "") == "nvidia.com/gpu" ? 1 : 0;
    if (j["metadata"]["name"] == train_job) {
      CHECK(gpu == 1);
      CHECK(std::find(tolerations.begin(), tolerations.end(), gpu_toleration) != tolerations.end());
    } else {
      CHECK(gpu == 0);
    }
  }
  std::vector<json> train_pods = cluster.PodsOf(train_job);
  REQUIRE(train_pods.size() == 1);
  CHECK(train_pods[0]["spec"]["nodeName"].get<std::string>().starts_with("a100-"));
  std::vector<json> prep_pods = cluster.PodsOf(prep_job);
  REQUIRE(prep_pods.size() == 1);
  CHECK(prep_pods[0]["spec"]["nodeName"].get<std::string>().starts_with("cpu-"));
}

TEST_CASE("cancelling a workflow deletes its running Job", "[kubernetes][kubesim]") {
  Cluster cluster("cpu-only.yaml");
  bool cancelled = false;
  const auto& s = cluster.Run(Wf("killed", R"(
  entrypoint: main
  templates:
  - name: main
    metadata: {annotations: {kubesim.kiln.dev/duration: 1h}}
    container: {image: busybox, command: [sleep, "3600"]}
)"), [&](scheduler::Driver& driver, const scheduler::WorkflowState& after) {
    auto it = after.nodes.find(after.root);
    if (!cancelled && it != after.nodes.end() && it->second.phase == scheduler::Phase::kRunning) {
      cancelled = true;
      driver.Post(scheduler::CancelRequested{});
    }
  });
  CHECK(cancelled);
  CHECK(s.phase == scheduler::Phase::kFailed);
  CHECK(s.nodes.at(s.root).phase == scheduler::Phase::kFailed);
  CHECK(cluster.Jobs("killed").empty());
  CHECK(cluster.Api("GET", "/apis/batch/v1/namespaces/default/jobs/" + JobName("uid-1", s.root, 0)).status == 404);
}

TEST_CASE("a create answered 409 AlreadyExists adopts the existing Job", "[kubernetes][kubesim]") {
  Cluster cluster("cpu-only.yaml");
  // A restarted kiln finds the Job its first life created: here made beforehand, under the name
  // the run's first attempt gets (the first run of a Cluster has uid-1), scripted to exit 5.
  json job = json::parse(R"({"apiVersion": "batch/v1", "kind": "Job",
    "metadata": {"labels": {"kiln.dev/workflow": "adopt"}},
    "spec": {"backoffLimit": 0, "template": {
      "metadata": {"annotations": {"kubesim.kiln.dev/exit-code": "5"}},
      "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}}})");
  job["metadata"]["name"] = JobName("uid-1", "adopt", 0);
  REQUIRE(cluster.Api("POST", "/apis/batch/v1/namespaces/default/jobs", job).status == 201);
  const auto& s = cluster.Run(Wf("adopt", R"(
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [echo, new]}
)"));
  REQUIRE(s.root == "adopt");
  CHECK(s.nodes.at(s.root).exit_code == 5);
  CHECK(cluster.Jobs("adopt").size() == 1);
}

TEST_CASE("kubeconfig problems are clear errors", "[kubernetes]") {
  TempDir dir;
  auto missing = kube::LoadKubeconfig(dir / "nope");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().ToString() == "kubeconfig " + (dir / "nope") + ": cannot read the file");
  kubesim::testing::WriteFile(dir / "k", "apiVersion: v1\nkind: Config\ncurrent-context: prod\ncontexts: []\n");
  auto no_context = kube::LoadKubeconfig(dir / "k");
  REQUIRE_FALSE(no_context.has_value());
  CHECK(no_context.error().ToString() == "kubeconfig " + (dir / "k") + ": context \"prod\" not found");
}

TEST_CASE("an unreachable API server is an Unavailable error naming it", "[kubernetes]") {
  asio::io_context io;
  kube::ClusterConfig config;
  REQUIRE(kube::ParseServerUrl("http://127.0.0.1:1", config).has_value());
  kube::ClientOptions options;
  options.max_attempts = 2;
  options.backoff_initial = std::chrono::milliseconds(1);
  auto client = kube::Client::Create(io, config, options);
  REQUIRE(client.has_value());
  std::optional<Result<json>> out;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { out = co_await (*client)->Get("/api/v1/namespaces"); },
                 asio::detached);
  while (!out) io.run_one();
  REQUIRE_FALSE(out->has_value());
  CHECK(out->error().code() == Code::kUnavailable);
  CHECK(out->error().ToString().starts_with("http://127.0.0.1:1: cannot connect: "));
}

}  // namespace kiln::executor

namespace kiln::executor {

namespace {

// Every message a node of `name` showed during a run.
struct Messages {
  std::vector<std::string> seen;
  void Saw(const scheduler::WorkflowState& s, const std::string& name) {
    for (const auto& [id, n] : s.nodes) {
      if (n.name == name && !n.message.empty() && (seen.empty() || seen.back() != n.message)) seen.push_back(n.message);
    }
  }
  bool Any(const std::string& part) const {
    return std::any_of(seen.begin(), seen.end(), [&](const std::string& m) { return m.find(part) != std::string::npos; });
  }
};

}  // namespace

TEST_CASE("a step no node can take shows the scheduler's reason, then falls back to its next accelerator",
          "[kubernetes][kubesim][gpu]") {
  Cluster cluster("mixed-gpu.yaml");
  Messages messages;
  // Two GPUs: the T4 node has one, so the first choice cannot be placed.
  const auto& s = cluster.Run(Wf("fallback", R"(
  entrypoint: train
  templates:
  - name: train
    metadata:
      annotations: {kiln.dev/accelerator: "t4, a100-80gb", kiln.dev/pending-timeout: 300ms}
    container:
      image: cuda
      command: [echo, trained]
      resources: {limits: {nvidia.com/gpu: "2"}}
)"), [&](scheduler::Driver&, const scheduler::WorkflowState& after) { messages.Saw(after, "fallback"); });
  CHECK(s.phase == scheduler::Phase::kSucceeded);
  // While it waited: the scheduler's own words.
  CHECK(messages.Any("0/5 nodes are available"));
  CHECK(messages.Any("Insufficient nvidia.com/gpu"));
  const scheduler::NodeState& n = s.nodes.at(s.root);
  CHECK(n.message.find("no node on accelerator t4 within 300ms") != std::string::npos);
  CHECK(n.message.find("trying accelerator a100-80gb") != std::string::npos);
  // The fallback's Job: its own name, the profile's affinity, an A100 node.
  std::string second = JobName("uid-1", s.root, 0, 1);
  CHECK(second != JobName("uid-1", s.root, 0));
  kube::ApiResponse job = cluster.Api("GET", "/apis/batch/v1/namespaces/default/jobs/" + second);
  REQUIRE(job.status == 200);
  CHECK(job.body["metadata"]["annotations"]["kiln.dev/accelerator-profile"] == "a100-80gb");
  const json terms = job.body["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
                                ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
  REQUIRE(terms.is_array());
  CHECK(terms[0]["matchExpressions"][0] ==
        json::parse(R"({"key": "nvidia.com/gpu.product", "operator": "In",
                        "values": ["NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"]})"));
  std::vector<json> pods = cluster.PodsOf(second);
  REQUIRE(pods.size() == 1);
  CHECK(pods[0]["spec"]["nodeName"].get<std::string>().starts_with("a100-"));
}

TEST_CASE("a step still unplaced when its last accelerator's pending timeout ends fails with the scheduler's reason",
          "[kubernetes][kubesim][gpu]") {
  Cluster cluster("mixed-gpu.yaml");
  const auto& s = cluster.Run(Wf("unplaced", R"(
  entrypoint: train
  templates:
  - name: train
    metadata:
      annotations: {kiln.dev/accelerator: t4, kiln.dev/pending-timeout: 200ms}
    container:
      image: cuda
      command: [echo, trained]
      resources: {limits: {nvidia.com/gpu: "4"}}
)"));
  CHECK(s.phase == scheduler::Phase::kFailed);
  const scheduler::NodeState& n = s.nodes.at(s.root);
  CHECK(n.phase == scheduler::Phase::kFailed);
  CHECK(n.message.starts_with("no node on accelerator t4 within 200ms: 0/5 nodes are available: "));
  CHECK(n.message.find("Insufficient nvidia.com/gpu") != std::string::npos);
  // Its Job is gone: nothing is left to be placed later.
  CHECK(cluster.Api("GET", "/apis/batch/v1/namespaces/default/jobs/" + JobName("uid-1", s.root, 0)).status == 404);
}

TEST_CASE("an accelerator profile from kiln's configuration places the step", "[kubernetes][kubesim][gpu]") {
  Cluster cluster("mixed-gpu.yaml");
  TempDir dir;
  std::string path = dir / "accelerators.yaml";
  kubesim::testing::WriteFile(path, R"(accelerators:
  small-gpu:
  - nvidia.com/gpu.memory: ["15360"]
cpuOnlySteps:
- {key: nvidia.com/gpu.product, operator: DoesNotExist}
)");
  auto profiles = AcceleratorProfiles::Load(path);
  REQUIRE(profiles.has_value());
  cluster.accelerators = &*profiles;
  const auto& s = cluster.Run(Wf("configured", R"(
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: infer, template: infer}
      - {name: prep, template: prep}
  - name: infer
    metadata: {annotations: {kiln.dev/accelerator: small-gpu}}
    container: {image: cuda, command: [echo, trained], resources: {limits: {nvidia.com/gpu: "1"}}}
  - name: prep
    container: {image: busybox, command: [echo, prep]}
)"));
  CHECK(s.phase == scheduler::Phase::kSucceeded);
  std::vector<json> infer = cluster.PodsOf(JobName("uid-1", NodeNamed(s, "infer").id, 0));
  REQUIRE(infer.size() == 1);
  CHECK(infer[0]["spec"]["nodeName"] == "t4-1");
  std::vector<json> prep = cluster.PodsOf(JobName("uid-1", NodeNamed(s, "prep").id, 0));
  REQUIRE(prep.size() == 1);
  CHECK(prep[0]["spec"]["nodeName"].get<std::string>().starts_with("cpu-"));
}

TEST_CASE("an unknown accelerator profile is an Error naming it and the known ones", "[kubernetes][kubesim][gpu]") {
  Cluster cluster("mixed-gpu.yaml");
  const auto& s = cluster.Run(Wf("unknown", R"(
  entrypoint: train
  templates:
  - name: train
    metadata: {annotations: {kiln.dev/accelerator: a100-80g}}
    container: {image: cuda, command: [echo, trained], resources: {limits: {nvidia.com/gpu: "1"}}}
)"));
  CHECK(s.phase == scheduler::Phase::kError);
  const std::string& m = s.nodes.at(s.root).message;
  CHECK(m.find("unknown accelerator profile \"a100-80g\"") != std::string::npos);
  CHECK(m.find("a100-80gb") != std::string::npos);
  CHECK(cluster.Jobs("unknown").empty());
}

TEST_CASE("kiln killed with SIGKILL while a Job runs, then resumed: the Job is adopted, never duplicated",
          "[kubernetes][kubesim][cli][resume]") {
  TempDir dir;
  const std::string audit = dir / "audit.log";
  Cluster cluster("cpu-only.yaml", {"--audit-log", audit});
  const Kubesim& sim = cluster.sim();
  kubesim::testing::WriteFile(dir / "wf.yaml", R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: adopt}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: first, template: quick}
    - - {name: slow, template: slow}
    - - {name: last, template: quick}
  - name: quick
    container: {image: busybox, command: [echo, done]}
  - name: slow
    metadata: {annotations: {kubesim.kiln.dev/duration: 1h}}
    container: {image: busybox, command: [sleep, "3600"]}
)");
  int out = -1;
  pid_t pid = kubesim::testing::Spawn({KILN_BINARY, "run", "--executor", "kubernetes", "--kubeconfig", sim.kubeconfig(),
                                       "--namespace", "default", "--data-dir", dir / "data", "--no-tree", dir / "wf.yaml"},
                                      "", &out);
  // The slow step runs (its Job's pod is ready): one line names it Pending, a later one Running.
  std::string seen = kubesim::testing::ReadUntil(out, "adopt[1].slow", std::chrono::seconds(60));
  while (seen.find("Running", seen.find("adopt[1].slow")) == std::string::npos) {
    seen += kubesim::testing::ReadUntil(out, "\n", std::chrono::seconds(60));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(out);
  REQUIRE(WIFSIGNALED(status));
  // While kiln is down the Job goes on; tell its pod to end now.
  kube::ApiResponse running = cluster.Api("GET", "/api/v1/namespaces/default/pods?fieldSelector=" +
                                                     kube::UrlEncode("status.phase=Running"));
  REQUIRE(running.status == 200);
  REQUIRE(running.body["items"].size() == 1);
  std::string pod = running.body["items"][0]["metadata"]["name"];
  CHECK(running.body["items"][0]["metadata"]["annotations"]["kiln.dev/node"] == "adopt[1].slow");
  REQUIRE(cluster.Api("PATCH", "/api/v1/namespaces/default/pods/" + pod,
                      json{{"metadata", {{"annotations", {{"kubesim.kiln.dev/exit-now", "true"}}}}}})
              .status == 200);

  auto r = kubesim::testing::Run({KILN_BINARY, "resume", "adopt", "--data-dir", dir / "data"}, dir.path());
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("workflow adopt Succeeded") != std::string::npos);
  CHECK(r.output.find("step lost") == std::string::npos);
  // From kubesim's audit log: one Job created per step, the slow one's create answered 409 by
  // the resumed kiln (adopted), and three Jobs in all.
  int created = 0;
  int conflicts = 0;
  std::istringstream lines(kubesim::testing::ReadFile(audit));
  for (std::string line; std::getline(lines, line);) {
    json e = json::parse(line);
    if (e.value("verb", "") != "create" || e["objectRef"].value("resource", "") != "jobs") continue;
    int code = e["responseStatus"].value("code", 0);
    created += code == 201 ? 1 : 0;
    conflicts += code == 409 ? 1 : 0;
  }
  CHECK(created == 3);
  CHECK(conflicts == 1);
  CHECK(cluster.Jobs("adopt").size() == 3);
}

TEST_CASE("a workflow completes through 500s, 429s, dropped connections, cut and expired watches",
          "[kubernetes][kubesim][faults]") {
  Cluster cluster("cpu-only.yaml");
  // Seeded, so every run meets the same faults in the same request order. The pod list is made
  // at the start and after a watch ends (not per step), so its 429s are counted, not drawn:
  // every run meets them.
  json faults = json::parse(R"({"seed": 11,
    "rateLimit": {"qps": 40, "burst": 20},
    "rules": [
      {"action": "error", "code": 500, "verb": "create", "resource": "jobs", "count": 1},
      {"action": "error", "code": 500, "verb": "create", "resource": "jobs", "probability": 0.3},
      {"action": "tooManyRequests", "verb": "list", "resource": "pods", "count": 2},
      {"action": "tooManyRequests", "verb": "list", "resource": "jobs", "probability": 0.3},
      {"action": "error", "code": 503, "resource": "pods/log", "probability": 0.3},
      {"action": "drop", "verb": "get", "probability": 0.2},
      {"action": "expireWatch", "resource": "jobs", "count": 1},
      {"action": "expireWatch", "resource": "pods", "count": 2},
      {"action": "endWatch", "resource": "jobs", "afterEvents": 4},
      {"action": "endWatch", "resource": "pods", "afterEvents": 5}]})");
  REQUIRE(cluster.Api("POST", "/kubesim/faults", faults).status == 200);
  const auto& s = cluster.Run(Wf("faulty", R"(
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: fan, template: work, withSequence: {count: "8"}}
    - - {name: join, template: work}
  - name: work
    metadata: {annotations: {kubesim.kiln.dev/duration: 20ms}}
    container: {image: busybox, command: [echo, hi]}
)"));
  CHECK(s.phase == scheduler::Phase::kSucceeded);
  size_t steps = 0;
  for (const auto& [id, n] : s.nodes) {
    if (n.type != scheduler::NodeType::kPod) continue;
    ++steps;
    CHECK(n.phase == scheduler::Phase::kSucceeded);
  }
  CHECK(steps == 9);
  CHECK(cluster.Jobs("faulty").size() == 9);  // one Job per step: no retry made a second
  // The faults did fire.
  kube::ApiResponse fired = cluster.Api("GET", "/kubesim/faults");
  REQUIRE(fired.status == 200);
  std::map<std::string, int64_t> by_action;
  for (const json& r : fired.body["rules"]) by_action[r.value("action", "")] += r.value("fired", int64_t{0});
  CHECK(by_action["error"] > 0);
  CHECK(by_action["tooManyRequests"] > 0);
  CHECK(by_action["expireWatch"] == 3);
  CHECK(by_action["endWatch"] > 0);
}

TEST_CASE("a 403 on create ends the step in Error with the API's message", "[kubernetes][kubesim][faults]") {
  Cluster cluster("cpu-only.yaml");
  json faults = {{"rules", json::array({{{"action", "error"},
                                         {"code", 403},
                                         {"verb", "create"},
                                         {"resource", "jobs"},
                                         {"message", "jobs.batch is forbidden: User \"system:serviceaccount:kiln:kiln\" "
                                                     "cannot create resource \"jobs\" in API group \"batch\""}}})}};
  REQUIRE(cluster.Api("POST", "/kubesim/faults", faults).status == 200);
  const auto& s = cluster.Run(Wf("forbidden", R"(
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [echo, hi]}
)"));
  CHECK(s.phase == scheduler::Phase::kError);
  const std::string& m = s.nodes.at(s.root).message;
  INFO(m);
  CHECK(m.starts_with("cannot create Job " + JobName("uid-1", s.root, 0) + ": "));
  CHECK(m.find("cannot create resource \"jobs\" in API group \"batch\"") != std::string::npos);
}

TEST_CASE("with the Job watch refused, the periodic relist still sees every completion",
          "[kubernetes][kubesim][faults]") {
  kube::ClientOptions options;
  options.resync_period = std::chrono::milliseconds(200);
  Cluster cluster("cpu-only.yaml", {}, options);
  json faults = {{"rules", json::array({{{"action", "error"}, {"code", 500}, {"verb", "watch"}, {"resource", "jobs"}}})}};
  REQUIRE(cluster.Api("POST", "/kubesim/faults", faults).status == 200);
  const auto& s = cluster.Run(Wf("relisted", R"(
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: work}
    - - {name: b, template: work}
    - - {name: c, template: work}
  - name: work
    metadata: {annotations: {kubesim.kiln.dev/duration: 20ms}}
    container: {image: busybox, command: [echo, hi]}
)"));
  CHECK(s.phase == scheduler::Phase::kSucceeded);
  CHECK(cluster.Jobs("relisted").size() == 3);
}

TEST_CASE("a Job deleted while kiln is not watching is found missing at the next relist", "[kubernetes][kubesim][faults]") {
  kube::ClientOptions options;
  options.resync_period = std::chrono::milliseconds(200);
  Cluster cluster("cpu-only.yaml", {}, options);
  json faults = {{"rules", json::array({{{"action", "error"}, {"code", 500}, {"verb", "watch"}, {"resource", "jobs"}}})}};
  REQUIRE(cluster.Api("POST", "/kubesim/faults", faults).status == 200);
  bool deleted = false;
  std::optional<Result<void>> deletion;
  const auto& s = cluster.Run(Wf("vanish", R"(
  entrypoint: main
  templates:
  - name: main
    metadata: {annotations: {kubesim.kiln.dev/duration: 1h}}
    container: {image: busybox, command: [sleep, "3600"]}
)"), [&](scheduler::Driver&, const scheduler::WorkflowState& after) {
    if (deleted || after.nodes.at(after.root).phase != scheduler::Phase::kRunning) return;
    deleted = true;
    std::string path = "/apis/batch/v1/namespaces/default/jobs/" + JobName("uid-1", after.root, 0);
    asio::co_spawn(cluster.client().io(),
                   [&cluster, &deletion, path]() -> asio::awaitable<void> {
                     deletion = co_await cluster.client().Delete(path, "Background");
                   },
                   asio::detached);
  });
  REQUIRE(deleted);
  REQUIRE(deletion.has_value());
  CHECK(deletion->has_value());
  CHECK(s.phase == scheduler::Phase::kError);
  CHECK(s.nodes.at(s.root).message ==
        "Job " + JobName("uid-1", s.root, 0) + " vanished: it was deleted while kiln was not watching");
}

TEST_CASE("the kiln exec agent reports outputs.result and output parameters read from files",
          "[kubernetes][kubesim][agent]") {
  // kubesim's containers run on this host: kiln is at this path, also when under /tmp (which
  // is private to each container) thanks to --image-dir.
  Cluster cluster("cpu-only.yaml", {"--image-dir", std::filesystem::path(KILN_BINARY).parent_path().string()});
  cluster.agent_path = KILN_BINARY;
  const auto& s = cluster.Run(Wf("agent", R"(
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: make, template: make}
    - - name: use
        template: use
        arguments:
          parameters:
          - {name: score, value: "{{steps.make.outputs.parameters.score}}"}
          - {name: said, value: "{{steps.make.outputs.result}}"}
  - name: make
    outputs:
      parameters: [{name: score, valueFrom: {path: /tmp/score.txt}}]
    script:
      image: busybox
      command: [sh]
      source: |
        echo 0.93 > /tmp/score.txt
        echo trained
  - name: use
    inputs: {parameters: [{name: score}, {name: said}]}
    container: {image: busybox, command: [sh, -c, 'test "{{inputs.parameters.score}}/{{inputs.parameters.said}}" = 0.93/trained']}
)"));
  CHECK(s.phase == scheduler::Phase::kSucceeded);
  const scheduler::NodeState& make = NodeNamed(s, "make");
  CHECK(make.outputs.at("score") == "0.93");
  REQUIRE(make.result.has_value());
  CHECK(*make.result == "trained");
}

TEST_CASE("a killed step ends even when the Job watch never reports the deletion", "[kubernetes][kubesim][faults]") {
  Cluster cluster("cpu-only.yaml");  // the resync period stays 5 minutes: the kill must not wait for it
  json faults = {{"rules", json::array({{{"action", "error"}, {"code", 500}, {"verb", "watch"}, {"resource", "jobs"}}})}};
  REQUIRE(cluster.Api("POST", "/kubesim/faults", faults).status == 200);
  bool cancelled = false;
  const auto& s = cluster.Run(Wf("killed-unwatched", R"(
  entrypoint: main
  templates:
  - name: main
    metadata: {annotations: {kubesim.kiln.dev/duration: 1h}}
    container: {image: busybox, command: [sleep, "3600"]}
)"), [&](scheduler::Driver& driver, const scheduler::WorkflowState& after) {
    // At once: the kill reaches the runner while (or just after) it creates the Job.
    if (cancelled || after.nodes.at(after.root).phase != scheduler::Phase::kPending) return;
    cancelled = true;
    driver.Post(scheduler::CancelRequested{});
  });
  CHECK(cancelled);
  CHECK(s.phase == scheduler::Phase::kFailed);
  CHECK(cluster.Jobs("killed-unwatched").empty());
}

}  // namespace kiln::executor
