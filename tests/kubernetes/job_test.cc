// The Kubernetes executor's pure part: Job names, labels, the Job for a template, termination
// messages (executor/kubernetes_job.h).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>

#include "dag/parse.h"
#include "executor/kubernetes_job.h"

namespace kiln::executor {

using nlohmann::json;

namespace {

bool IsDns1123Label(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return s.front() != '-' && s.back() != '-';
}

// The first template of a one-template workflow, kept alive with its manifest.
struct OneTemplate {
  std::vector<dag::Manifest> manifests;
  const dag::Template& tmpl() const { return manifests.back().spec.templates.front(); }
  const dag::WorkflowSpec& spec() const { return manifests.back().spec; }
};

OneTemplate Parse(const std::string& spec_body) {
  dag::Diagnostics diags;
  OneTemplate t;
  t.manifests = dag::ParseManifests(
      "wf.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n" + spec_body,
      dag::ParseOptions{}, diags);
  REQUIRE_FALSE(diags.has_errors());
  REQUIRE(t.manifests.size() == 1);
  return t;
}

}  // namespace

TEST_CASE("Job names are deterministic DNS-1123 labels of at most 63 characters", "[kubernetes]") {
  CHECK(JobName("uid-1", "wf.train", 0) == JobName("uid-1", "wf.train", 0));
  CHECK(JobName("uid-1", "wf.train", 0).starts_with("wf-train-0-"));
  CHECK(JobName("uid-1", "wf.train", 0) != JobName("uid-1", "wf.train", 1));
  CHECK(JobName("uid-1", "wf.train", 0) != JobName("uid-2", "wf.train", 0));
  // Sanitising alone would make these equal; the hash keeps them apart.
  CHECK(JobName("u", "wf.a(0)", 0) != JobName("u", "wf.a-0-", 0));
  std::string long_node = "wf." + std::string(200, 'x') + "[3].Step_Name(0:1)";
  std::string name = JobName("uid-1", long_node, 12);
  CHECK(name.size() <= 63);
  CHECK(IsDns1123Label(name));
  CHECK(IsDns1123Label(JobName("uid-1", "WF.(weird)..", 0)));
}

TEST_CASE("label values are kept when valid and hashed when changed", "[kubernetes]") {
  CHECK(LabelValue("train-evaluate") == "train-evaluate");
  CHECK(LabelValue("wf.train") == "wf.train");
  std::string v = LabelValue("wf[0].train(1:x)");
  CHECK(v.starts_with("wf-0-.train-1-x-"));
  CHECK(v.size() == std::string("wf-0-.train-1-x").size() + 9);
  CHECK(LabelValue(std::string(100, 'a')).size() <= 63);
  CHECK(LabelValue(std::string(100, 'a')) != LabelValue(std::string(101, 'a')));
}

TEST_CASE("a container step becomes a Job with kiln's labels and no Job-level retries", "[kubernetes]") {
  OneTemplate t = Parse(R"(
  entrypoint: main
  serviceAccountName: runner
  nodeSelector: {pool: batch}
  podMetadata: {labels: {team: ml}}
  templates:
  - name: main
    activeDeadlineSeconds: 120
    nodeSelector: {zone: a}
    metadata: {annotations: {note: hi}}
    container:
      image: busybox
      command: [echo, hi]
      resources: {limits: {cpu: "1"}}
)");
  scheduler::LaunchStep step;
  step.node = "wf";
  step.tmpl = &t.tmpl();
  step.container = t.tmpl().container;
  step.attempt = 2;
  JobContext ctx;
  ctx.namespace_ = "ml";
  ctx.workflow = "wf";
  ctx.workflow_uid = "uid-1";
  ctx.spec = &t.spec();
  ctx.ttl_seconds_after_finished = 300;
  auto job = BuildJob(step, ctx);
  REQUIRE(job.has_value());
  const json& j = *job;
  CHECK(j["metadata"]["name"] == JobName("uid-1", "wf", 2));
  CHECK(j["metadata"]["namespace"] == "ml");
  CHECK(j["metadata"]["labels"] == json{{"kiln.dev/workflow", "wf"},
                                        {"kiln.dev/node", "wf"},
                                        {"kiln.dev/attempt", "2"},
                                        {"kiln.dev/workflow-uid", "uid-1"}});
  CHECK(j["spec"]["backoffLimit"] == 0);
  CHECK(j["spec"]["activeDeadlineSeconds"] == 120);
  CHECK(j["spec"]["ttlSecondsAfterFinished"] == 300);
  CHECK(j["spec"]["podFailurePolicy"] ==
        json::parse(R"({"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]})"));
  const json& pod = j["spec"]["template"];
  CHECK(pod["metadata"]["labels"]["team"] == "ml");
  CHECK(pod["metadata"]["labels"]["kiln.dev/attempt"] == "2");
  CHECK(pod["metadata"]["annotations"]["note"] == "hi");
  CHECK(pod["spec"]["restartPolicy"] == "Never");
  CHECK(pod["spec"]["serviceAccountName"] == "runner");
  CHECK(pod["spec"]["nodeSelector"] == json{{"pool", "batch"}, {"zone", "a"}});
  CHECK_FALSE(pod["spec"].contains("tolerations"));
  const json& c = pod["spec"]["containers"][0];
  CHECK(c["name"] == "main");
  CHECK(c["image"] == "busybox");
  CHECK(c["command"] == json{"echo", "hi"});
  CHECK(c["resources"]["limits"]["cpu"] == "1");
}

TEST_CASE("a GPU step gets the nvidia.com/gpu toleration unless it has one", "[kubernetes]") {
  OneTemplate t = Parse(R"(
  entrypoint: gpu
  templates:
  - name: gpu
    container: {image: cuda, command: [nvidia-smi], resources: {limits: {nvidia.com/gpu: 1}}}
  - name: tolerant
    tolerations: [{key: nvidia.com/gpu, operator: Equal, value: present, effect: NoSchedule}]
    container: {image: cuda, command: [nvidia-smi], resources: {limits: {nvidia.com/gpu: 1}}}
)");
  JobContext ctx;
  ctx.workflow = "wf";
  ctx.workflow_uid = "u";
  scheduler::LaunchStep step;
  step.node = "wf";
  step.tmpl = &t.spec().templates[0];
  step.container = step.tmpl->container;
  auto job = BuildJob(step, ctx);
  REQUIRE(job.has_value());
  CHECK((*job)["spec"]["template"]["spec"]["tolerations"] ==
        json::parse(R"([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])"));
  step.tmpl = &t.spec().templates[1];
  step.container = step.tmpl->container;
  job = BuildJob(step, ctx);
  REQUIRE(job.has_value());
  CHECK((*job)["spec"]["template"]["spec"]["tolerations"].size() == 1);
  CHECK((*job)["spec"]["template"]["spec"]["tolerations"][0]["value"] == "present");
  CHECK(ToleratesGpuTaint(json::parse(R"([{"operator": "Exists"}])")));
  CHECK_FALSE(ToleratesGpuTaint(json::parse(R"([{"key": "nvidia.com/gpu", "effect": "NoExecute"}])")));
}

TEST_CASE("podSpecPatch merges into the pod kiln built, the workflow's first, then the template's",
          "[kubernetes][podspecpatch]") {
  OneTemplate t = Parse(R"Y(
  entrypoint: train
  podSpecPatch: '{"containers": [{"name": "main", "env": [{"name": "FROM", "value": "workflow"}]}],
                  "terminationGracePeriodSeconds": 5}'
  templates:
  - name: train
    tolerations: [{key: dedicated, operator: Equal, value: ml, effect: NoSchedule}]
    podSpecPatch: |
      containers:
      - name: main
        env: [{name: FROM, value: template}, {name: EXTRA, value: "1"}]
        resources: {limits: {memory: 2Gi, nvidia.com/gpu: "{{inputs.parameters.gpus}}"}}
        volumeMounts: [{name: data, mountPath: /data}]
      - name: logger
        image: fluent-bit
      volumes:
      - {name: cache, emptyDir: {medium: Memory}}
    container:
      image: trainer
      command: [train]
      env: [{name: FROM, value: container}, {name: KEEP, value: "yes"}]
      resources: {limits: {cpu: "2"}}
)Y");
  JobContext ctx;
  ctx.workflow = "wf";
  ctx.workflow_uid = "u";
  ctx.spec = &t.spec();
  scheduler::LaunchStep step;
  step.node = "wf";
  step.tmpl = &t.tmpl();
  step.container = step.tmpl->container;
  // The workflow's volumes (the controller lists them all): only those mounted are the pod's.
  step.volumes = json::parse(R"([{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                                 {"name": "unused", "emptyDir": {}}])");
  // The controller renders the patches (tests/scheduler); here they come rendered.
  step.pod_spec_patches = {t.spec().pod_spec_patch, t.tmpl().pod_spec_patch};
  size_t at = step.pod_spec_patches[1].find("{{inputs.parameters.gpus}}");
  REQUIRE(at != std::string::npos);
  step.pod_spec_patches[1].replace(at, std::string("{{inputs.parameters.gpus}}").size(), "2");
  auto job = BuildJob(step, ctx);
  REQUIRE(job.has_value());
  const json& pod = (*job)["spec"]["template"]["spec"];
  CHECK(pod["terminationGracePeriodSeconds"] == 5);
  REQUIRE(pod["containers"].size() == 2);
  const json& main = pod["containers"][0];
  CHECK(main["name"] == "main");
  CHECK(main["image"] == "trainer");
  CHECK(main["command"] == json{"train"});
  // env merges by name: the template's patch wins over the workflow's, which won over the container.
  CHECK(main["env"] == json::parse(R"([{"name": "FROM", "value": "template"}, {"name": "KEEP", "value": "yes"},
                                       {"name": "EXTRA", "value": "1"}])"));
  CHECK(main["resources"]["limits"] == json{{"cpu", "2"}, {"memory", "2Gi"}, {"nvidia.com/gpu", "2"}});
  CHECK(pod["containers"][1] == json{{"name", "logger"}, {"image", "fluent-bit"}});
  // The workflow volume the patch mounts is there, with the patch's own.
  CHECK(main["volumeMounts"] == json::parse(R"([{"name": "data", "mountPath": "/data"}])"));
  CHECK(pod["volumes"] == json::parse(R"([{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                                          {"name": "cache", "emptyDir": {"medium": "Memory"}}])"));
  // The GPU limit came from the patch: the taint's toleration is added to the template's own,
  // and the pod is not kept off GPU nodes.
  CHECK(pod["tolerations"] == json::parse(R"([{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
                                              {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])"));

  SECTION("a patch that is not a mapping fails the step with the reason") {
    step.pod_spec_patches = {"[containers]"};
    auto bad = BuildJob(step, ctx);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message().find("podSpecPatch is not a YAML or JSON object (it is an array)") != std::string::npos);
    step.pod_spec_patches = {"containers: [{name: main"};
    bad = BuildJob(step, ctx);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message().find("podSpecPatch is not a YAML or JSON object: podSpecPatch:2:1: YAML syntax error") !=
          std::string::npos);
    CHECK(bad.error().message().find("fix the template's podSpecPatch") != std::string::npos);
  }
  SECTION("a directive of the wrong type is the step's error, not kiln's crash") {
    step.pod_spec_patches = {R"({"containers": [{"name": "main", "$patch": 3}]})"};
    auto odd = BuildJob(step, ctx);
    CHECK(odd.has_value());  // a $patch that is not a string is no directive: the item merges
  }
  SECTION("$patch: replace and delete directives work on the pod") {
    step.pod_spec_patches = {R"({"tolerations": [], "containers": [{"name": "main", "resources": {"$patch": "delete"}}]})"};
    auto replaced = BuildJob(step, ctx);
    REQUIRE(replaced.has_value());
    const json& p = (*replaced)["spec"]["template"]["spec"];
    CHECK(p["tolerations"] == json::array());
    CHECK_FALSE(p["containers"][0].contains("resources"));
  }
}

TEST_CASE("a script step runs its source as a file passed to its command", "[kubernetes]") {
  OneTemplate t = Parse(R"Y(
  entrypoint: s
  templates:
  - name: s
    script: {image: python, command: [python], source: "print(1)"}
)Y");
  scheduler::LaunchStep step;
  step.node = "wf";
  step.tmpl = &t.tmpl();
  step.container = t.tmpl().script.container;
  step.script_source = "print(1)";
  JobContext ctx;
  ctx.workflow = "wf";
  auto job = BuildJob(step, ctx);
  REQUIRE(job.has_value());
  const json& c = (*job)["spec"]["template"]["spec"]["containers"][0];
  CHECK(c["command"][0] == "/bin/sh");
  CHECK(c["command"][4] == "python");
  CHECK(c["env"].back() == json{{"name", "KILN_SCRIPT_SOURCE"}, {"value", "print(1)"}});
  CHECK((*job)["spec"]["template"]["spec"]["volumes"][0]["name"] == "kiln-staging");
}

TEST_CASE("what the Kubernetes executor cannot run yet is a clear error", "[kubernetes]") {
  OneTemplate t = Parse(R"(
  entrypoint: r
  templates:
  - name: r
    resource: {action: create, manifest: "kind: ConfigMap"}
)");
  scheduler::LaunchStep step;
  step.node = "wf";
  step.tmpl = &t.tmpl();
  auto job = BuildJob(step, JobContext{});
  REQUIRE_FALSE(job.has_value());
  CHECK(job.error().ToString() ==
        "wf: the Kubernetes executor runs container and script templates; a resource template is not supported yet");
}

TEST_CASE("a termination message may be a ref to the whole message in the artifact repository", "[kubernetes][agent]") {
  auto out = ParseTerminationMessage(R"({"outputs": {"sha256": "ab12", "size": 11000}})");
  REQUIRE(out.has_value());
  REQUIRE(out->stored.has_value());
  CHECK(out->stored->sha256 == "ab12");
  CHECK(out->stored->size == 11000);
  CHECK(out->parameters.empty());
}

TEST_CASE("termination messages carry output parameters and the result", "[kubernetes]") {
  auto a = ParseTerminationMessage(R"({"parameters": {"x": "1", "n": 2}, "result": "hello"})");
  REQUIRE(a.has_value());
  CHECK(a->parameters == std::map<std::string, std::string>{{"n", "2"}, {"x", "1"}});
  CHECK(a->result == "hello");
  auto b = ParseTerminationMessage(R"({"parameters": [{"name": "y", "value": "v"}]})");
  REQUIRE(b.has_value());
  CHECK(b->parameters.at("y") == "v");
  CHECK_FALSE(b->result.has_value());
  CHECK_FALSE(ParseTerminationMessage("Traceback (most recent call last):").has_value());
  CHECK_FALSE(ParseTerminationMessage(R"({"other": 1})").has_value());
}

}  // namespace kiln::executor

namespace kiln::executor {

TEST_CASE("kiln.dev/accelerator lists profiles in order; each fallback is its own Job", "[kubernetes][gpu]") {
  CHECK(ParseAcceleratorList("a100-80gb") == std::vector<std::string>{"a100-80gb"});
  CHECK(ParseAcceleratorList("a100-80gb, t4") == std::vector<std::string>{"a100-80gb", "t4"});
  CHECK(ParseAcceleratorList("[a100-80gb, 'l4',t4]") == std::vector<std::string>{"a100-80gb", "l4", "t4"});
  CHECK(ParseAcceleratorList(" , ").empty());

  OneTemplate t = Parse(R"(
  entrypoint: train
  templates:
  - name: train
    metadata: {annotations: {kiln.dev/accelerator: "h100-80gb, l4"}}
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
          - matchExpressions: [{key: zone, operator: In, values: [a]}]
          - matchExpressions: [{key: zone, operator: In, values: [b]}]
    container: {image: cuda, command: [train], resources: {limits: {nvidia.com/gpu: 1}}}
)");
  JobContext ctx;
  ctx.workflow = "wf";
  ctx.workflow_uid = "u";
  scheduler::LaunchStep step;
  step.node = "wf";
  step.tmpl = &t.tmpl();
  step.container = step.tmpl->container;
  auto first = BuildJob(step, ctx, 0);
  auto second = BuildJob(step, ctx, 1);
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  CHECK((*first)["metadata"]["name"] == JobName("u", "wf", 0));
  CHECK((*second)["metadata"]["name"] == JobName("u", "wf", 0, 1));
  CHECK(JobName("u", "wf", 0, 1) != JobName("u", "wf", 0, 2));
  CHECK((*first)["metadata"]["annotations"]["kiln.dev/accelerator-profile"] == "h100-80gb");
  CHECK((*second)["metadata"]["annotations"]["kiln.dev/accelerator-profile"] == "l4");
  // The pod's own terms (zone a or b) each joined with each of the profile's label sets.
  const json terms = (*second)["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
                              ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
  const AcceleratorProfile* l4 = BuiltinAccelerators().Find("l4");
  REQUIRE(l4 != nullptr);
  REQUIRE(terms.size() == 2 * l4->terms.size());
  CHECK(terms[0]["matchExpressions"] == json::parse(R"([{"key": "zone", "operator": "In", "values": ["a"]},
      {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-L4"]}])"));
  CHECK(terms[1]["matchExpressions"][1] ==
        json::parse(R"({"key": "cloud.google.com/gke-accelerator", "operator": "In", "values": ["nvidia-l4"]})"));
  CHECK(terms.back()["matchExpressions"][0]["values"] == json::array({"b"}));
  CHECK_FALSE(BuildJob(step, ctx, 2).has_value());
}

TEST_CASE("bad placement annotations are errors naming the annotation", "[kubernetes][gpu]") {
  const AcceleratorProfiles& builtin = BuiltinAccelerators();
  auto unknown = PlacementOf(json{{"kiln.dev/accelerator", "t4, a100"}}, builtin);
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error().message().find("kiln.dev/accelerator: unknown accelerator profile \"a100\"") !=
        std::string::npos);
  CHECK(unknown.error().message().find("a100-40gb, a100-80gb") != std::string::npos);
  auto timeout = PlacementOf(json{{"kiln.dev/pending-timeout", "5 minutes"}}, builtin);
  REQUIRE_FALSE(timeout.has_value());
  CHECK(timeout.error().message().find("kiln.dev/pending-timeout: \"5 minutes\" is not a positive duration") !=
        std::string::npos);
  auto ok = PlacementOf(json{{"kiln.dev/pending-timeout", "1m30s"}, {"kiln.dev/accelerator", "t4"}}, builtin);
  REQUIRE(ok.has_value());
  CHECK(ok->pending_timeout == std::chrono::seconds(90));
  CHECK(ok->accelerators == std::vector<std::string>{"t4"});
}

TEST_CASE("the accelerator profiles file adds profiles and says where it is wrong", "[kubernetes][gpu]") {
  char tmpl[] = "/tmp/kiln-accel-XXXXXX";
  int fd = ::mkstemp(tmpl);
  REQUIRE(fd >= 0);
  ::close(fd);
  const std::string path = tmpl;
  auto write = [&](const std::string& text) { std::ofstream(path, std::ios::trunc) << text; };

  write(R"(accelerators:
  a100-80gb:
  - {pool: big}
  mine:
  - example.com/gpu: [x, y]
    example.com/zone: z
cpuOnlySteps:
- {key: example.com/gpu, operator: DoesNotExist}
)");
  auto loaded = AcceleratorProfiles::Load(path);
  REQUIRE(loaded.has_value());
  REQUIRE(loaded->Find("mine") != nullptr);
  CHECK(loaded->Find("mine")->terms == json::parse(R"([{"matchExpressions": [
      {"key": "example.com/gpu", "operator": "In", "values": ["x", "y"]},
      {"key": "example.com/zone", "operator": "In", "values": ["z"]}]}])"));
  CHECK(loaded->Find("a100-80gb")->terms.size() == 1);  // replaced
  CHECK(loaded->Find("t4") != nullptr);                // the built-in ones stay
  CHECK(loaded->cpu_only() == json::parse(R"([{"key": "example.com/gpu", "operator": "DoesNotExist"}])"));

  write("accelerator:\n  x: []\n");
  auto typo = AcceleratorProfiles::Load(path);
  REQUIRE_FALSE(typo.has_value());
  CHECK(typo.error().message() == path + ":1:1: unknown key \"accelerator\" (did you mean \"accelerators\"?); "
                                         "the keys are accelerators and cpuOnlySteps");
  write("accelerators:\n  x:\n  - {a: {b: c}}\n");
  auto nested = AcceleratorProfiles::Load(path);
  REQUIRE_FALSE(nested.has_value());
  CHECK(nested.error().message().starts_with(path + ":3:9: accelerators.x.a: expected a label value"));
  write("cpuOnlySteps:\n- {key: k, operator: In}\n");
  auto values = AcceleratorProfiles::Load(path);
  REQUIRE_FALSE(values.has_value());
  CHECK(values.error().message() == path + ":2:3: cpuOnlySteps: operator In needs values");
  CHECK_FALSE(AcceleratorProfiles::Load(path + ".missing").has_value());
  ::unlink(path.c_str());
}

}  // namespace kiln::executor

namespace kiln::executor {

TEST_CASE("with the agent, the command runs under kiln exec, which reports output parameters", "[kubernetes][agent]") {
  OneTemplate t = Parse(R"(
  entrypoint: main
  templates:
  - name: main
    outputs:
      parameters:
      - {name: score, valueFrom: {path: /tmp/score}}
      - {name: label, valueFrom: {parameter: "x"}}
    container: {image: python:3.12, command: [python, train.py], args: [--epochs, "3"]}
  - name: no-command
    container: {image: python:3.12, args: [train.py]}
)");
  JobContext ctx;
  ctx.workflow = "wf";
  ctx.workflow_uid = "u";
  ctx.agent_image = "ghcr.io/example/kiln:0.1.0";
  scheduler::LaunchStep step;
  step.node = "wf";
  step.tmpl = &t.tmpl();
  step.container = step.tmpl->container;
  auto job = BuildJob(step, ctx);
  REQUIRE(job.has_value());
  const json& pod = (*job)["spec"]["template"]["spec"];
  CHECK(pod["containers"][0]["command"] ==
        json::parse(R"(["/kiln-agent/kiln", "exec", "--param", "score=/tmp/score", "--",
                        "python", "train.py", "--epochs", "3"])"));
  CHECK_FALSE(pod["containers"][0].contains("args"));
  CHECK(pod["initContainers"][0] == json::parse(R"({"name": "kiln-agent", "image": "ghcr.io/example/kiln:0.1.0",
      "command": ["cp", "/usr/local/bin/kiln", "/kiln-agent/kiln"],
      "volumeMounts": [{"name": "kiln-agent", "mountPath": "/kiln-agent"}]})"));
  CHECK(pod["volumes"] == json::parse(R"([{"name": "kiln-agent", "emptyDir": {}}])"));

  ctx.agent_image.clear();
  ctx.agent_path = "/opt/kiln";
  job = BuildJob(step, ctx);
  REQUIRE(job.has_value());
  CHECK((*job)["spec"]["template"]["spec"]["containers"][0]["command"][0] == "/opt/kiln");
  CHECK_FALSE((*job)["spec"]["template"]["spec"].contains("initContainers"));

  // With the artifact volume configured, a step without artifacts mounts it too: outputs too
  // large for the termination message go there.
  ctx.artifact_pvc = "kiln-artifacts";
  job = BuildJob(step, ctx);
  REQUIRE(job.has_value());
  CHECK((*job)["spec"]["template"]["spec"]["containers"][0]["command"] ==
        json::parse(R"(["/opt/kiln", "exec", "--param", "score=/tmp/score", "--artifact-root", "/kiln-artifacts", "--",
                        "python", "train.py", "--epochs", "3"])"));
  CHECK((*job)["spec"]["template"]["spec"]["volumes"] ==
        json::parse(R"([{"name": "kiln-artifacts", "persistentVolumeClaim": {"claimName": "kiln-artifacts"}}])"));
  ctx.artifact_pvc.clear();

  step.tmpl = &t.spec().templates[1];
  step.container = step.tmpl->container;
  auto refused = BuildJob(step, ctx);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message().find("the kiln exec agent needs the step's command") != std::string::npos);

  auto out = ParseTerminationMessage(R"({"parameters": {"score": "0.9"}, "result": "ok", "note": "n"})");
  REQUIRE(out.has_value());
  CHECK(out->parameters.at("score") == "0.9");
  CHECK(out->note == "n");
  auto error = ParseTerminationMessage(R"({"error": "output parameters are 5000 bytes"})");
  REQUIRE(error.has_value());
  CHECK(error->error == "output parameters are 5000 bytes");
}

}  // namespace kiln::executor

namespace kiln::executor {

TEST_CASE("with artifacts, the agent mounts the artifact PVC and is told what to place and store",
          "[kubernetes][agent][artifacts]") {
  OneTemplate t = Parse(R"(
  entrypoint: main
  templates:
  - name: main
    inputs:
      artifacts:
      - {name: data, path: /data/in.csv}
      - {name: cfg, path: /etc/app/cfg, optional: true}
    outputs:
      artifacts:
      - {name: model, path: /mnt/out/model, archive: {none: {}}}
      - {name: notes, path: /tmp/notes.txt, optional: true}
    container: {image: python:3.12, command: [python, train.py]}
)");
  JobContext ctx;
  ctx.workflow = "wf";
  ctx.workflow_uid = "u";
  ctx.agent_path = "/opt/kiln";
  ctx.artifact_pvc = "kiln-artifacts";
  scheduler::LaunchStep step;
  step.node = "wf";
  step.tmpl = &t.tmpl();
  step.container = step.tmpl->container;
  scheduler::ArtifactRef data;
  data.sha256 = std::string(64, 'a');
  data.location = "/var/lib/kiln/artifacts/" + data.sha256;  // the controller's path: not passed on
  data.size = 12;
  scheduler::ArtifactRef cfg;
  cfg.key = "configs/app";
  cfg.archived = true;
  step.input_artifacts = {{"data", "/data/in.csv", data}, {"cfg", "/etc/app/cfg", cfg}};
  step.output_artifact_keys = {{"model", "models/{{workflow.name}}/model"}};
  auto job = BuildJob(step, ctx);
  REQUIRE(job.has_value());
  const json& pod = (*job)["spec"]["template"]["spec"];
  const json& command = pod["containers"][0]["command"];
  REQUIRE(command.size() == 9);
  CHECK(command[0] == "/opt/kiln");
  CHECK(command[2] == "--artifact-root");
  CHECK(command[3] == "/kiln-artifacts");
  CHECK(command[4] == "--artifacts");
  CHECK(json::parse(command[5].get<std::string>()) == json::parse(R"({
    "inputs": [
      {"name": "data", "path": "/data/in.csv", "optional": false,
       "ref": {"kiln_artifact": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "location": "",
               "size": 12, "archived": false}},
      {"name": "cfg", "path": "/etc/app/cfg", "optional": true,
       "ref": {"kiln_artifact": "", "location": "", "size": 0, "archived": true, "key": "configs/app"}}],
    "outputs": [
      {"name": "model", "path": "/mnt/out/model", "optional": false, "key": "models/{{workflow.name}}/model",
       "archive": {"none": {}}},
      {"name": "notes", "path": "/tmp/notes.txt", "optional": true}]})"));
  CHECK(std::vector<json>(command.begin() + 6, command.end()) == std::vector<json>{"--", "python", "train.py"});
  CHECK(pod["containers"][0]["volumeMounts"] ==
        json::parse(R"([{"name": "kiln-artifacts", "mountPath": "/kiln-artifacts"}])"));
  CHECK(pod["volumes"] ==
        json::parse(R"([{"name": "kiln-artifacts", "persistentVolumeClaim": {"claimName": "kiln-artifacts"}}])"));

  // What is missing, said with the flag to pass.
  JobContext no_pvc = ctx;
  no_pvc.artifact_pvc.clear();
  auto refused = BuildJob(step, no_pvc);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().ToString() ==
        "wf: artifacts on Kubernetes need the artifact repository's volume: run kiln with --artifact-pvc CLAIM (a "
        "ReadWriteMany PersistentVolumeClaim, see deploy/)");
  JobContext no_agent = ctx;
  no_agent.agent_path.clear();
  refused = BuildJob(step, no_agent);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message().starts_with("artifacts on Kubernetes need the kiln exec agent"));

  // Raw inputs only: no volume is needed.
  OneTemplate raw = Parse(R"(
  entrypoint: main
  templates:
  - name: main
    inputs: {artifacts: [{name: msg, path: /tmp/msg, raw: {data: hello}}]}
    container: {image: busybox, command: [cat, /tmp/msg]}
)");
  step.tmpl = &raw.tmpl();
  step.container = step.tmpl->container;
  scheduler::ArtifactRef inline_ref;
  inline_ref.raw = "echo $HOME $(HOME) $$";
  inline_ref.raw_given = true;
  step.input_artifacts = {{"msg", "/tmp/msg", inline_ref}};
  step.output_artifact_keys.clear();
  auto raw_job = BuildJob(step, no_pvc);
  REQUIRE(raw_job.has_value());
  CHECK_FALSE((*raw_job)["spec"]["template"]["spec"].contains("volumes"));
  // Kubernetes expands $(VAR) and $$ in a command: the agent's own arguments are escaped, the
  // step's command is left for Kubernetes as the user wrote it.
  const json& raw_command = (*raw_job)["spec"]["template"]["spec"]["containers"][0]["command"];
  CHECK(raw_command[5].get<std::string>().find(R"("raw":"echo $$HOME $$(HOME) $$$$")") != std::string::npos);
  CHECK(raw_command.back() == "/tmp/msg");

  // The agent's refs come back through the termination message.
  auto out = ParseTerminationMessage(
      R"({"parameters": {}, "artifacts": {"model": {"kiln_artifact": "bb", "location": "", "size": 3, "archived": false,
          "key": "models/m"}}})");
  REQUIRE(out.has_value());
  REQUIRE(out->artifacts.count("model") == 1);
  CHECK(out->artifacts.at("model").sha256 == "bb");
  CHECK(out->artifacts.at("model").size == 3);
  CHECK(out->artifacts.at("model").key == "models/m");
}

}  // namespace kiln::executor
