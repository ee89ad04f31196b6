#include "dag/validate.h"

#include <catch2/catch.hpp>

#include <algorithm>

#include "tests/dag/lint_helpers.h"

namespace kiln::dag {

using testing::LintText;
using V = std::vector<std::string>;

namespace {

const char* kHeader = R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: wf
spec:
)";

std::string Wf(const std::string& spec) { return std::string(kHeader) + spec; }

const char* kEcho = R"(
  - name: echo
    inputs:
      parameters:
      - name: message
    outputs:
      parameters:
      - name: out
        valueFrom:
          path: /tmp/out
    container:
      image: busybox
      command: [echo, "{{inputs.parameters.message}}"]
)";

}  // namespace

TEST_CASE("a valid diamond DAG has no diagnostics", "[dag]") {
  std::string y = Wf(R"(  entrypoint: diamond
  templates:
  - name: diamond
    dag:
      tasks:
      - {name: A, template: echo, arguments: {parameters: [{name: message, value: A}]}}
      - {name: B, depends: A, template: echo, arguments: {parameters: [{name: message, value: "{{tasks.A.outputs.parameters.out}}"}]}}
      - {name: C, depends: A, template: echo, arguments: {parameters: [{name: message, value: C}]}}
      - {name: D, depends: B && C, template: echo, arguments: {parameters: [{name: message, value: D}]}}
)" + std::string(kEcho));
  CHECK(LintText(y, true) == V{});
}

TEST_CASE("validator reports an unknown task in depends with a suggestion", "[dag]") {
  std::string y = Wf(R"(  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: train, template: echo, arguments: {parameters: [{name: message, value: x}]}}
      - name: evaluate
        depends: "trian"
        template: echo
        arguments: {parameters: [{name: message, value: x}]}
)" + std::string(kEcho));
  CHECK(LintText(y) == V{"t.yaml:13:18: spec.templates[0].dag.tasks[1].depends: unknown task \"trian\" (did you mean \"train\"?)"});
}

TEST_CASE("validator reports cycles with their path", "[dag]") {
  std::string y = Wf(R"(  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, depends: c, template: echo, arguments: {parameters: [{name: message, value: x}]}}
      - {name: b, depends: a, template: echo, arguments: {parameters: [{name: message, value: x}]}}
      - {name: c, depends: b, template: echo, arguments: {parameters: [{name: message, value: x}]}}
)" + std::string(kEcho));
  CHECK(LintText(y) == V{"t.yaml:11:28: spec.templates[0].dag.tasks[0].depends: dependency cycle: a -> b -> c -> a"});
}

TEST_CASE("validator reports missing and unknown entrypoints and templates", "[dag]") {
  CHECK(LintText(Wf(R"(  entrypoint: mian
  templates:
  - name: main
    container: {image: busybox}
)")) == V{"t.yaml:6:15: spec.entrypoint: unknown template \"mian\" (did you mean \"main\"?)"});
  CHECK(LintText(Wf(R"(  templates:
  - name: main
    container: {image: busybox}
)")) == V{"t.yaml:6:3: spec.entrypoint: missing required field: entrypoint (the template to start with)"});
  CHECK(LintText(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: s
        template: ech
)" + std::string(kEcho))) ==
        V{"t.yaml:11:19: spec.templates[0].steps[0][0].template: unknown template \"ech\" (did you mean \"echo\"?)"});
}

TEST_CASE("validator reports duplicate template and task names", "[dag]") {
  CHECK(LintText(Wf(R"(  entrypoint: main
  templates:
  - name: main
    container: {image: busybox}
  - name: main
    container: {image: busybox}
)")) == V{"t.yaml:10:11: spec.templates[1].name: duplicate template name \"main\" (also at spec.templates[0])"});
}

TEST_CASE("validator reports wrong types with the field path", "[dag]") {
  CHECK(LintText(Wf(R"(  entrypoint: main
  parallelism: many
  templates:
  - name: main
    container:
      image: busybox
      command: echo hi
)")) == V{"t.yaml:7:16: spec.parallelism: expected an integer, got a string",
          "t.yaml:12:16: spec.templates[0].container.command: expected a list, got a string"});
}

TEST_CASE("validator reports undeclared parameters and non-ancestor tasks", "[dag]") {
  std::string y = Wf(R"(  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: echo, arguments: {parameters: [{name: message, value: "{{inputs.parameters.nope}}"}]}}
      - {name: b, template: echo, arguments: {parameters: [{name: message, value: "{{tasks.a.outputs.parameters.out}}"}]}}
      - {name: c, depends: a, template: echo, arguments: {parameters: [{name: message, value: "{{tasks.a.outputs.parameters.outt}}"}]}}
      - {name: d, depends: a, template: echo, arguments: {parameters: [{name: message, value: "{{workflow.parameters.missing}}"}]}}
)" + std::string(kEcho));
  CHECK(LintText(y) ==
        V{"t.yaml:11:83: spec.templates[0].dag.tasks[0].arguments.parameters[0].value: {{inputs.parameters.nope}} refers to input parameter \"nope\", which template \"main\" does not declare",
          "t.yaml:12:83: spec.templates[0].dag.tasks[1].arguments.parameters[0].value: {{tasks.a.outputs.parameters.out}} refers to task \"a\", which is not a dependency of this task (add it to depends)",
          "t.yaml:13:95: spec.templates[0].dag.tasks[2].arguments.parameters[0].value: {{tasks.a.outputs.parameters.outt}} refers to output parameter \"outt\" of \"a\", but template \"echo\" declares no such output (did you mean \"out\"?)",
          "t.yaml:14:95: spec.templates[0].dag.tasks[3].arguments.parameters[0].value: {{workflow.parameters.missing}} refers to workflow parameter \"missing\", which spec.arguments.parameters does not declare"});
}

TEST_CASE("validator reports a missing input argument", "[dag]") {
  std::string y = Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: hello
        template: echo
)" + std::string(kEcho));
  CHECK(LintText(y) == V{"t.yaml:10:9: spec.templates[0].steps[0][0].arguments.parameters: template \"echo\" needs input parameter \"message\", which this step does not supply"});
}

TEST_CASE("validator reports steps referencing a later group", "[dag]") {
  std::string y = Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: first
        template: echo
        arguments: {parameters: [{name: message, value: "{{steps.second.outputs.parameters.out}}"}]}
    - - name: second
        template: echo
        arguments: {parameters: [{name: message, value: "{{steps.first.outputs.parameters.out}}"}]}
)" + std::string(kEcho));
  CHECK(LintText(y) == V{"t.yaml:12:57: spec.templates[0].steps[0][0].arguments.parameters[0].value: {{steps.second.outputs.parameters.out}} refers to step \"second\", which does not run in an earlier step group"});
}

TEST_CASE("validator reports syntax errors in depends, when and expressions", "[dag]") {
  std::string y = Wf(R"(  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: echo, arguments: {parameters: [{name: message, value: x}]}}
      - {name: b, depends: "a &&", template: echo, arguments: {parameters: [{name: message, value: x}]}}
      - {name: c, depends: a, when: "{{tasks.a.outputs.result}} == (", template: echo, arguments: {parameters: [{name: message, value: x}]}}
      - {name: d, depends: a, template: echo, arguments: {parameters: [{name: message, value: "{{=asInt(1 +}}"}]}}
)" + std::string(kEcho));
  std::vector<std::string> got = LintText(y);
  INFO(got[0] << "\n" << got[1] << "\n" << got[2]);
  REQUIRE(got.size() == 3);
  CHECK(got[0].starts_with("t.yaml:12:28: spec.templates[0].dag.tasks[1].depends: invalid depends expression \"a &&\": "));
  CHECK(got[1].starts_with("t.yaml:13:37: spec.templates[0].dag.tasks[2].when: invalid when expression \"{{tasks.a.outputs.result}} == (\": "));
  CHECK(got[2].starts_with("t.yaml:14:95: spec.templates[0].dag.tasks[3].arguments.parameters[0].value: invalid expression \"asInt(1 +\": "));
}

TEST_CASE("validator reports invalid quantities, names and withSequence", "[dag]") {
  std::string y = std::string(R"(apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: My_Workflow
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: loop
        template: work
        withSequence: {count: "3", end: "5"}
  - name: work
    container:
      image: busybox
      resources:
        limits: {memory: 1.5GB, cpu: 500m}
)");
  std::vector<std::string> got = LintText(y);
  INFO(got[0] << "\n" << got[1] << "\n" << got[2]);
  REQUIRE(got.size() == 3);
  CHECK(got[0].starts_with("t.yaml:4:9: metadata.name: invalid name \"My_Workflow\": "));
  CHECK(got[1] == "t.yaml:12:23: spec.templates[0].steps[0][0].withSequence: give either count or end, not both");
  CHECK(got[2].starts_with("t.yaml:17:26: spec.templates[1].container.resources.limits.memory: invalid quantity \"1.5GB\""));
}

TEST_CASE("unknown fields warn with a location, and error under strict", "[dag]") {
  std::string y = Wf(R"(  entrypoint: main
  templates:
  - name: main
    containr: {image: busybox}
    container: {image: busybox}
)");
  CHECK(LintText(y, true) == V{"t.yaml:9:5: spec.templates[0].containr: warning: unknown field (did you mean \"container\"?)"});
  ParseOptions strict;
  strict.strict = true;
  CHECK(LintText(y, false, strict) == V{"t.yaml:9:5: spec.templates[0].containr: unknown field (did you mean \"container\"?)"});
}

TEST_CASE("YAML syntax errors carry their position", "[dag]") {
  CHECK(LintText("apiVersion: argoproj.io/v1alpha1\nkind: [Workflow\n") ==
        V{"t.yaml:3:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence that started at line 2, column 7)"});
}

TEST_CASE("CronWorkflow schedules, time zones and policies are checked", "[dag]") {
  std::string y = R"(apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata:
  name: nightly
spec:
  schedules: ["0 2 * * *", "61 * * * *"]
  timezone: Mars/Base
  concurrencyPolicy: Forbidd
  workflowSpec:
    entrypoint: main
    templates:
    - name: main
      container: {image: busybox}
)";
  std::vector<std::string> got = LintText(y);
  INFO(got[0] << "\n" << got[1] << "\n" << got[2]);
  REQUIRE(got.size() == 3);
  CHECK(got[0].starts_with("t.yaml:6:28: spec.schedules[1]: invalid schedule \"61 * * * *\": minute field"));
  CHECK(got[1] == "t.yaml:7:13: spec.timezone: unknown time zone \"Mars/Base\": use an IANA name such as \"America/Los_Angeles\"");
  CHECK(got[2] == "t.yaml:8:22: spec.concurrencyPolicy: unknown concurrencyPolicy \"Forbidd\": use Allow, Forbid or Replace (did you mean \"Forbid\"?)");
}

TEST_CASE("templateRef is resolved against WorkflowTemplates in the same lint", "[dag]") {
  std::string y = R"(apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: lib
spec:
  templates:
  - name: hello
    container: {image: busybox}
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: use-
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: a
        templateRef: {name: lib, template: helo}
    - - name: b
        templateRef: {name: other, template: x}
)";
  CHECK(LintText(y, true) ==
        V{"t.yaml:20:22: spec.templates[0].steps[0][0].templateRef.template: WorkflowTemplate \"lib\" has no template \"helo\" (did you mean \"hello\"?)",
          "t.yaml:22:22: spec.templates[0].steps[1][0].templateRef: warning: WorkflowTemplate \"other\" is not among the linted files; the reference is not checked"});
}

TEST_CASE("every problem is reported at once", "[dag]") {
  std::string y = Wf(R"(  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: nope}
      - {name: b, depends: zz, template: nope2}
)");
  CHECK(LintText(y).size() == 3);
}

TEST_CASE("podSpecPatch must be a YAML or JSON mapping; volumeClaimGC names a known strategy", "[dag]") {
  std::string y = Wf(R"(  entrypoint: main
  podSpecPatch: '[not, a, mapping]'
  volumeClaimGC: {strategy: OnWorkflowSucess}
  templates:
  - name: main
    podSpecPatch: '{"containers": [{"name": "main"'
    container: {image: busybox, command: [echo, hi]}
  - name: templated
    inputs: {parameters: [{name: mem}]}
    podSpecPatch: '{"containers": [{"name": "main", "resources": {"limits": {"memory": "{{inputs.parameters.mem}}"}}}]}'
    container: {image: busybox, command: [echo, hi]}
  - name: yaml
    podSpecPatch: |
      containers:
      - name: main
        resources: {limits: {memory: 1Gi}}
    container: {image: busybox, command: [echo, hi]}
)");
  V out = LintText(y);
  REQUIRE(out.size() == 3);
  auto line = [&](std::string_view needle) {
    for (const std::string& l : out) {
      if (l.find(needle) != std::string::npos) return l;
    }
    return std::string();
  };
  CHECK(line("spec.podSpecPatch: podSpecPatch must be a mapping of pod spec fields").ends_with("not an array"));
  CHECK(line("spec.volumeClaimGC.strategy: unknown volumeClaimGC strategy \"OnWorkflowSucess\"")
            .ends_with("(did you mean \"OnWorkflowSuccess\"?)"));
  // At the template (t.yaml:10), with where in the patch text the YAML breaks.
  CHECK(line("spec.templates[0].podSpecPatch: podSpecPatch is not valid YAML or JSON: spec.templates[0].podSpecPatch:2:1: "
             "YAML syntax error")
            .starts_with("t.yaml:10:"));
}

TEST_CASE("resource templates: conditions, flags and mergeStrategy are checked before anything runs", "[dag]") {
  std::string y = Wf(R"(  entrypoint: main
  templates:
  - name: main
    resource:
      action: get
      successCondition: status.succeeded > many
      failureCondition: status.phase in Failed
      mergeStrategy: strategik
      setOwnerReference: true
      flags: [configmap, x, --dry-run=client]
    outputs:
      parameters:
      - {name: num, valueFrom: {jqFilter: .metadata.name}}
  - name: fine
    inputs: {parameters: [{name: num}]}
    resource:
      action: delete
      successCondition: "status.succeeded > {{inputs.parameters.num}}"
      flags: [cm, "{{inputs.parameters.num}}", --ignore-not-found]
)");
  V out = LintText(y, /*include_warnings=*/true);
  auto has = [&](std::string_view needle) {
    return std::any_of(out.begin(), out.end(), [&](const std::string& l) { return l.find(needle) != std::string::npos; });
  };
  CHECK(out.size() == 6);
  CHECK(has("resource.successCondition: condition \"status.succeeded > many\": status.succeeded > needs an integer"));
  CHECK(has("resource.failureCondition: condition \"status.phase in Failed\": status.phase: in and notin take a list"));
  CHECK(has("resource.mergeStrategy: unknown mergeStrategy \"strategik\""));
  CHECK(has("resource.flags: resource.flags: unsupported flag \"--dry-run=client\""));
  CHECK(has("resource.setOwnerReference: warning: kiln keeps no Workflow object"));
  CHECK(has("outputs.parameters[0].valueFrom.jqFilter: warning: kiln runs no jq"));
}

TEST_CASE("resource flags without a manifest must name the TYPE; manifestFrom is warned about", "[dag]") {
  std::string y = Wf(R"(  entrypoint: main
  templates:
  - name: main
    resource:
      action: delete
      flags: [--selector, app=x]
  - name: from
    inputs: {artifacts: [{name: m, path: /tmp/m}]}
    resource:
      action: create
      manifestFrom: {artifact: m}
)");
  V out = LintText(y, /*include_warnings=*/true);
  REQUIRE(out.size() == 2);
  CHECK(out[0].find("spec.templates[0].resource.flags: without a manifest the flags must name the object's TYPE") !=
        std::string::npos);
  CHECK(out[1].find("spec.templates[1].resource.manifestFrom: warning: kiln's Kubernetes executor does not read a "
                    "manifest from an artifact yet") != std::string::npos);
}

}  // namespace kiln::dag
