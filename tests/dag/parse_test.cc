#include "dag/parse.h"

#include <catch2/catch.hpp>

namespace kiln::dag {

namespace {

std::vector<Manifest> Parse(const std::string& text, Diagnostics* diags_out = nullptr) {
  Diagnostics diags;
  std::vector<Manifest> ms = ParseManifests("p.yaml", text, ParseOptions{}, diags);
  if (diags_out) *diags_out = diags;
  return ms;
}

}  // namespace

TEST_CASE("parser builds the typed model of a Workflow", "[dag][parse]") {
  Diagnostics d;
  auto ms = Parse(R"y(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: train-
  namespace: ml
  labels: {team: vision}
  annotations: {note: "x"}
spec:
  entrypoint: main
  onExit: cleanup
  parallelism: 4
  activeDeadlineSeconds: 3600
  serviceAccountName: trainer
  arguments:
    parameters:
    - {name: lr, value: 0.1}
    - {name: flag, value: yes}
    - name: mode
      value: fast
      enum: [fast, slow]
  synchronization:
    mutex: {name: gpu}
    semaphores:
    - configMapKeyRef: {name: limits, key: train}
  podGC: {strategy: OnPodSuccess}
  ttlStrategy: {secondsAfterCompletion: 60}
  templates:
  - name: main
    retryStrategy:
      limit: "3"
      retryPolicy: OnTransientError
      backoff: {duration: 10s, factor: 2, maxDuration: 1m}
    dag:
      failFast: false
      tasks:
      - name: sweep
        template: train
        withItems: [{lr: 0.1}, {lr: 0.01}]
        continueOn: {failed: true}
        hooks:
          exit: {template: cleanup}
      - name: count
        template: train
        depends: "sweep.AnySucceeded"
        withSequence: {count: "5", format: "n%02d"}
  - name: train
    timeout: 1h
    container:
      image: python:3.11
      command: [python, -c]
      args: ["print(1)"]
      resources:
        requests: {cpu: 500m, memory: 1Gi, nvidia.com/gpu: 1}
    tolerations:
    - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
    nodeSelector: {accelerator: a100}
  - name: cleanup
    script:
      image: busybox
      command: [sh]
      source: echo done
)y",
                  &d);
  CHECK(d.items().empty());
  REQUIRE(ms.size() == 1);
  const Manifest& m = ms[0];
  CHECK(m.kind == ManifestKind::kWorkflow);
  CHECK(m.metadata.generate_name == "train-");
  CHECK(m.metadata.namespace_ == "ml");
  CHECK(m.metadata.labels.at("team") == "vision");
  CHECK(m.spec.entrypoint == "main");
  CHECK(m.spec.on_exit == "cleanup");
  CHECK(m.spec.parallelism == "4");
  CHECK(m.spec.active_deadline_seconds == "3600");
  REQUIRE(m.spec.arguments.parameters.size() == 3);
  CHECK(m.spec.arguments.parameters[0].value == "0.1");
  CHECK(m.spec.arguments.parameters[1].value == "yes");  // AnyString keeps the text
  CHECK(m.spec.arguments.parameters[2].enum_values == std::vector<std::string>{"fast", "slow"});
  CHECK(m.spec.synchronization["mutex"]["name"] == "gpu");
  CHECK(m.spec.synchronization["semaphores"][0]["configMapKeyRef"]["key"] == "train");
  CHECK(m.spec.pod_gc["strategy"] == "OnPodSuccess");
  REQUIRE(m.spec.templates.size() == 3);
  const Template& main = m.spec.templates[0];
  CHECK(main.type == TemplateType::kDag);
  REQUIRE(main.retry_strategy.has_value());
  CHECK(main.retry_strategy->limit == "3");
  CHECK(main.retry_strategy->retry_policy == RetryPolicy::kOnTransientError);
  CHECK(main.retry_strategy->backoff->factor == "2");
  CHECK(main.dag.fail_fast == false);
  REQUIRE(main.dag.tasks.size() == 2);
  const Invocation& sweep = main.dag.tasks[0];
  CHECK(sweep.with_items.size() == 2);
  CHECK(sweep.with_items[1]["lr"] == 0.01);
  CHECK(sweep.continue_on->failed);
  REQUIRE(sweep.hooks.size() == 1);
  CHECK(sweep.hooks[0].name == "exit");
  const Invocation& count = main.dag.tasks[1];
  CHECK(count.depends == "sweep.AnySucceeded");
  CHECK(count.with_sequence->count == "5");
  CHECK(count.with_sequence->format == "n%02d");
  const Template& train = m.spec.templates[1];
  CHECK(train.type == TemplateType::kContainer);
  CHECK(train.timeout == "1h");
  CHECK(train.container["resources"]["requests"]["nvidia.com/gpu"] == "1");
  CHECK(train.tolerations[0]["operator"] == "Exists");
  CHECK(train.node_selector.at("accelerator") == "a100");
  const Template& cleanup = m.spec.templates[2];
  CHECK(cleanup.type == TemplateType::kScript);
  CHECK(cleanup.script.source == "echo done");
  CHECK_FALSE(cleanup.script.container.contains("source"));
  CHECK(main.loc.line == 28);
  CHECK(sweep.name_loc.line == 36);
  CHECK(sweep.name_loc.column == 15);
}

TEST_CASE("parser reads CronWorkflows with v3 schedule and v4 schedules", "[dag][parse]") {
  Diagnostics d;
  auto ms = Parse(R"y(apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata: {name: nightly}
spec:
  schedule: "0 2 * * *"
  schedules: ["30 3 * * MON"]
  timezone: Europe/Paris
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 60
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 1
  suspend: false
  workflowSpec:
    entrypoint: main
    templates:
    - {name: main, container: {image: busybox}}
)y",
                  &d);
  CHECK(d.items().empty());
  REQUIRE(ms.size() == 1);
  REQUIRE(ms[0].cron.has_value());
  CHECK(ms[0].cron->schedules == std::vector<std::string>{"0 2 * * *", "30 3 * * MON"});
  CHECK(ms[0].cron->timezone == "Europe/Paris");
  CHECK(ms[0].cron->concurrency_policy == "Forbid");
  CHECK(ms[0].cron->starting_deadline_seconds == 60);
  CHECK(ms[0].spec_path == "spec.workflowSpec");
  CHECK(ms[0].spec.templates.size() == 1);
}

TEST_CASE("parser handles every template type", "[dag][parse]") {
  Diagnostics d;
  auto ms = Parse(R"y(apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: types}
spec:
  templates:
  - {name: c, container: {image: a}}
  - {name: s, script: {image: a, source: x}}
  - {name: d, dag: {tasks: [{name: t, template: c}]}}
  - {name: st, steps: [[{name: a, template: c}]]}
  - {name: su, suspend: {duration: 10s}}
  - {name: r, resource: {action: create, manifest: "kind: ConfigMap"}}
  - {name: cs, containerSet: {containers: [{name: main, image: a}]}}
  - {name: h, http: {url: "https://example.com", method: GET}}
  - {name: da, data: {source: {artifactPaths: {name: x}}, transformation: [{expression: "x"}]}}
  - {name: p, plugin: {hello: {text: hi}}}
)y",
                  &d);
  CHECK(d.items().empty());
  REQUIRE(ms.size() == 1);
  std::vector<TemplateType> types;
  for (const Template& t : ms[0].spec.templates) types.push_back(t.type);
  CHECK(types == std::vector<TemplateType>{TemplateType::kContainer, TemplateType::kScript, TemplateType::kDag,
                                           TemplateType::kSteps, TemplateType::kSuspend, TemplateType::kResource,
                                           TemplateType::kContainerSet, TemplateType::kHttp, TemplateType::kData,
                                           TemplateType::kPlugin});
}

TEST_CASE("YAML anchors, merge keys and 1.1 scalars are read as Go's reader does", "[dag][parse]") {
  Diagnostics d;
  auto ms = Parse(R"y(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: anchors}
spec:
  entrypoint: main
  templates:
  - name: main
    container: &base
      image: busybox
      command: [echo]
  - name: other
    container:
      <<: *base
      args: [hi]
    daemon: yes
)y",
                  &d);
  CHECK(d.items().empty());
  REQUIRE(ms.size() == 1);
  const Template& other = ms[0].spec.templates[1];
  CHECK(other.container["image"] == "busybox");
  CHECK(other.container["args"][0] == "hi");
  CHECK(other.daemon);
}

TEST_CASE("a Kubernetes object of the wrong shape is reported where it is", "[dag][parse]") {
  Diagnostics d;
  Parse(R"y(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: shapes}
spec:
  entrypoint: main
  tolerations: {key: a}
  templates:
  - name: main
    container:
      image: busybox
      env: [{name: A, valu: x}]
      resources: {limits: {memory: lots}}
)y",
        &d);
  d.Sort();
  std::vector<std::string> got;
  for (const Diagnostic& x : d.items()) got.push_back(x.ToString());
  REQUIRE(got.size() == 3);
  CHECK(got[0] == "p.yaml:6:16: spec.tolerations: expected a list, got a map");
  CHECK(got[1] == "p.yaml:11:23: spec.templates[0].container.env[0].valu: warning: unknown field \"valu\" in EnvVar (did you mean \"value\"?)");
  CHECK(got[2].starts_with("p.yaml:12:36: spec.templates[0].container.resources.limits.memory: invalid quantity \"lots\""));
}

TEST_CASE("documents of other kinds are skipped with a note", "[dag][parse]") {
  Diagnostics d;
  auto ms = Parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
                  "apiVersion: argoproj.io/v1alpha1\nkind: Workflw\nspec: {}\n",
                  &d);
  CHECK(ms.empty());
  REQUIRE(d.items().size() == 2);
  CHECK(d.items()[0].ToString() == "p.yaml:2:7: note: document 1 is a v1 ConfigMap, not an Argo workflow; skipped");
  CHECK(d.items()[1].ToString() ==
        "p.yaml:6:7: kind: unsupported kind \"Workflw\": kiln reads Workflow, WorkflowTemplate, ClusterWorkflowTemplate, "
        "CronWorkflow and WorkflowEventBinding (did you mean \"Workflow\"?)");
}

TEST_CASE("templateDefaults fill what each template leaves unset", "[dag][parse]") {
  Diagnostics d;
  auto ms = Parse(R"y(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: td}
spec:
  entrypoint: a
  templateDefaults:
    timeout: 30s
    retryStrategy: {limit: "2"}
    nodeSelector: {pool: cpu, zone: a}
    container:
      imagePullPolicy: IfNotPresent
      env: [{name: MODE, value: default}]
  templates:
  - name: a
    container: {image: busybox, command: [echo]}
  - name: b
    timeout: 5s
    nodeSelector: {pool: gpu}
    container: {image: busybox, env: [{name: OWN, value: "1"}]}
  - name: s
    script: {image: python, command: [python], source: "print(1)"}
)y", &d);
  REQUIRE(ms.size() == 1);
  CHECK(!d.has_errors());
  const auto& ts = ms[0].spec.templates;
  REQUIRE(ts.size() == 3);
  CHECK(ts[0].timeout == "30s");
  REQUIRE(ts[0].retry_strategy);
  CHECK(ts[0].retry_strategy->limit == "2");
  CHECK(ts[0].node_selector.at("pool") == "cpu");
  CHECK(ts[0].container["imagePullPolicy"] == "IfNotPresent");
  CHECK(ts[0].container["image"] == "busybox");
  CHECK(ts[1].timeout == "5s");                        // the template's own value wins
  CHECK(ts[1].node_selector.at("pool") == "gpu");      // maps merge key by key
  CHECK(ts[1].node_selector.at("zone") == "a");
  CHECK(ts[1].container["env"].size() == 1);           // lists are replaced whole
  CHECK(ts[1].container["env"][0]["name"] == "OWN");
  CHECK(ts[2].script.container["imagePullPolicy"] == "IfNotPresent");
}

}  // namespace kiln::dag
