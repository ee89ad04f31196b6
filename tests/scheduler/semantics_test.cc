// Semantics not covered elsewhere: suspend with a duration, templateRef into a WorkflowTemplate
// (and that template's own calls resolving there), retryPolicy, output parameter defaults and
// expressions, and a fan-out that is a task's dependency.
#include <catch2/catch.hpp>

#include "scheduler/controller.h"
#include "tests/fakes/fake_executor.h"

namespace kiln::scheduler {

using testing::FakeExecutor;
using testing::Wf;
using testing::Timers;
using testing::Launches;
using V = std::vector<std::string>;

namespace {

const LaunchStep* LaunchOf(const std::vector<Action>& actions, const std::string& node) {
  for (const auto& a : actions) {
    if (const auto* l = std::get_if<LaunchStep>(&a); l && l->node == node) return l;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("suspend with a duration waits on a timer, then the next step runs", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: pause, template: wait}
    - - {name: after, template: echo}
  - name: wait
    suspend: {duration: 90s}
  - name: echo
    container: {image: busybox, command: [echo, hi]}
)"));
  auto actions = f.Start();
  CHECK(Launches(actions).empty());
  REQUIRE(Timers(actions).size() == 1);
  CHECK(Timers(actions)[0].timer == "suspend:wf[0].pause");
  CHECK(Timers(actions)[0].at == f.now() + std::chrono::seconds(90));
  CHECK(f.phase("wf[0].pause") == Phase::kRunning);
  CHECK(Launches(f.Send(TimerFired{"suspend:wf[0].pause"})) == V{"wf[1].after"});
  CHECK(f.phase("wf[0].pause") == Phase::kSucceeded);
}

TEST_CASE("templateRef runs a WorkflowTemplate's template, whose own calls resolve there", "[scheduler]") {
  FakeExecutor f(R"(apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: lib}
spec:
  templates:
  - name: pipeline
    inputs: {parameters: [{name: who}]}
    steps:
    - - {name: greet, template: hello, arguments: {parameters: [{name: who, value: "{{inputs.parameters.who}}"}]}}
  - name: hello
    inputs: {parameters: [{name: who}]}
    container: {image: busybox, command: [echo, "lib says hi to {{inputs.parameters.who}}"]}
---
)" + Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: call
        templateRef: {name: lib, template: pipeline}
        arguments: {parameters: [{name: who, value: kiln}]}
  - name: hello
    container: {image: busybox, command: [echo, "the workflow's own hello"]}
)"));
  auto actions = f.Start();
  const LaunchStep* l = LaunchOf(actions, "wf[0].call[0].greet");
  REQUIRE(l != nullptr);
  CHECK(l->container["command"][1] == "lib says hi to kiln");
  f.Finish("wf[0].call[0].greet");
  CHECK(f.state().phase == Phase::kSucceeded);
}

TEST_CASE("podSpecPatch is rendered with the step's inputs, the workflow's patch first", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  arguments: {parameters: [{name: pool, value: gpu-pool}]}
  podSpecPatch: '{"nodeSelector": {"pool": "{{workflow.parameters.pool}}"}}'
  templates:
  - name: main
    steps:
    - - {name: train, template: train, arguments: {parameters: [{name: mem, value: 3Gi}]}}
  - name: train
    inputs: {parameters: [{name: mem}]}
    podSpecPatch: |
      containers:
      - name: main
        resources: {limits: {memory: "{{inputs.parameters.mem}}"}}
    container: {image: busybox, command: [echo, hi]}
)"));
  auto actions = f.Start();
  const LaunchStep* l = LaunchOf(actions, "wf[0].train");
  REQUIRE(l != nullptr);
  REQUIRE(l->pod_spec_patches.size() == 2);
  CHECK(l->pod_spec_patches[0] == R"({"nodeSelector": {"pool": "gpu-pool"}})");
  CHECK(l->pod_spec_patches[1].find("memory: \"3Gi\"") != std::string::npos);
}

TEST_CASE("retryPolicy decides which failures are retried", "[scheduler]") {
  auto workflow = [](const std::string& policy) {
    return Wf(R"(  entrypoint: flaky
  templates:
  - name: flaky
    retryStrategy: {limit: 3, retryPolicy: )" + policy + R"(}
    container: {image: busybox, command: [sh, -c, "exit 1"]}
)");
  };
  SECTION("OnFailure retries a non-zero exit") {
    FakeExecutor f(workflow("OnFailure"));
    f.Start();
    CHECK(Launches(f.Finish("wf(0)", 1)) == V{"wf(1)"});
  }
  SECTION("OnError does not retry a non-zero exit, only an error") {
    FakeExecutor f(workflow("OnError"));
    f.Start();
    CHECK(Launches(f.Finish("wf(0)", 1)).empty());
    CHECK(f.state().phase == Phase::kFailed);
    FakeExecutor g(workflow("OnError"));
    g.Start();
    StepFinished error;
    error.node = "wf(0)";
    error.error = true;
    error.message = "executable not found: nope";
    CHECK(Launches(g.Send(error)) == V{"wf(1)"});
  }
  SECTION("Always retries both, up to the limit, then says so") {
    FakeExecutor f(workflow("Always"));
    f.Start();
    for (int i = 0; i < 3; ++i) {
      CHECK(Launches(f.Finish("wf(" + std::to_string(i) + ")", 1)) == V{"wf(" + std::to_string(i + 1) + ")"});
    }
    CHECK(Launches(f.Finish("wf(3)", 1)).empty());
    CHECK(f.phase("wf") == Phase::kFailed);
    CHECK(f.node("wf").message.starts_with("No more retries left"));
  }
}

TEST_CASE("output parameters fall back to valueFrom.default and expression", "[scheduler][outputs]") {
  FakeExecutor f(Wf(R"y(  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: A, template: produce}
      - name: B
        depends: A
        template: consume
        arguments:
          parameters:
          - {name: a, value: "{{tasks.A.outputs.parameters.missing}}"}
          - {name: b, value: "{{tasks.A.outputs.parameters.doubled}}"}
  - name: produce
    outputs:
      parameters:
      - name: missing
        valueFrom: {path: /tmp/nothing, default: fallback}
      - name: doubled
        valueFrom: {expression: "string(asInt(outputs.result) * 2)"}
    container: {image: busybox, command: [echo, "21"]}
  - name: consume
    inputs: {parameters: [{name: a}, {name: b}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.a}} {{inputs.parameters.b}}"]}
)y"));
  f.Start();
  auto actions = f.Finish("wf.A", 0, {}, "21");
  const LaunchStep* l = LaunchOf(actions, "wf.B");
  REQUIRE(l != nullptr);
  CHECK(l->container["command"][1] == "fallback 42");
}

TEST_CASE("a task depending on a fan-out waits for every item", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: fan, template: echo, withItems: [1, 2, 3]}
      - {name: join, template: echo, depends: fan}
  - name: echo
    container: {image: busybox, command: [echo, hi]}
)"));
  CHECK(Launches(f.Start()) == V{"wf.fan(0:1)", "wf.fan(1:2)", "wf.fan(2:3)"});
  CHECK(Launches(f.Finish("wf.fan(0:1)")).empty());
  CHECK(Launches(f.Finish("wf.fan(2:3)")).empty());
  CHECK(Launches(f.Finish("wf.fan(1:2)")) == V{"wf.join"});
  f.Finish("wf.join");
  CHECK(f.state().phase == Phase::kSucceeded);
}

}  // namespace kiln::scheduler
