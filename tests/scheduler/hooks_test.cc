// Lifecycle hooks below the workflow: a step's or task's exit hook (`onExit`, `hooks.exit`) and
// hooks with an `expression`, at step and at workflow level.
#include <catch2/catch.hpp>

#include "scheduler/controller.h"
#include "tests/fakes/fake_executor.h"

namespace kiln::scheduler {

using testing::FakeExecutor;
using testing::Wf;
using testing::Launches;
using V = std::vector<std::string>;

namespace {

const char* kTemplates = R"(
  - name: echo
    container: {image: busybox, command: [echo, hi]}
  - name: say
    inputs: {parameters: [{name: what}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.what}}"]}
)";

std::string Arg0(const std::vector<Action>& actions, const std::string& node) {
  for (const auto& a : actions) {
    if (const auto* l = std::get_if<LaunchStep>(&a); l && l->node == node) return l->container["command"][1];
  }
  return "<not launched>";
}

}  // namespace

TEST_CASE("a step's onExit runs after it, and the next group waits for it", "[scheduler][hooks]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: echo, onExit: echo}
    - - {name: b, template: echo}
)" + std::string(kTemplates)));
  CHECK(Launches(f.Start()) == V{"wf[0].a"});
  CHECK(Launches(f.Finish("wf[0].a", 1)) == V{"wf[0].a.onExit"});
  CHECK(f.node("wf[0].a.onExit").hook);
  CHECK(f.phase("wf[0]") == Phase::kRunning);  // the group waits for the hook
  // The step failed: the group fails once its hook is done, and b never runs.
  CHECK(Launches(f.Finish("wf[0].a.onExit")).empty());
  CHECK(f.phase("wf[0]") == Phase::kFailed);
  CHECK(f.state().phase == Phase::kFailed);
}

TEST_CASE("a failed exit hook does not fail its step's group", "[scheduler][hooks]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: echo, onExit: echo}
    - - {name: b, template: echo}
)" + std::string(kTemplates)));
  f.Start();
  f.Finish("wf[0].a");
  CHECK(Launches(f.Finish("wf[0].a.onExit", 2)) == V{"wf[1].b"});
  CHECK(f.phase("wf[0].a.onExit") == Phase::kFailed);
  CHECK(f.phase("wf[0]") == Phase::kSucceeded);
  f.Finish("wf[1].b");
  CHECK(f.state().phase == Phase::kSucceeded);
}

TEST_CASE("a task's hooks.exit gets its arguments and the task's status", "[scheduler][hooks]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: A
        template: echo
        hooks:
          exit:
            template: say
            arguments: {parameters: [{name: what, value: "A ended {{tasks.A.status}}"}]}
      - {name: B, template: echo, depends: A}
)" + std::string(kTemplates)));
  f.Start();
  auto actions = f.Finish("wf.A");
  // B starts at once; the hook runs beside it, and the dag waits for both.
  CHECK(Launches(actions) == V{"wf.A.onExit", "wf.B"});
  CHECK(Arg0(actions, "wf.A.onExit") == "A ended Succeeded");
  f.Finish("wf.B");
  CHECK(f.phase("wf") == Phase::kRunning);
  f.Finish("wf.A.onExit");
  CHECK(f.state().phase == Phase::kSucceeded);
}

TEST_CASE("an expression hook starts once, the first time it is true", "[scheduler][hooks]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: a
        template: echo
        hooks:
          running:
            expression: steps.a.status == "Running"
            template: say
            arguments: {parameters: [{name: what, value: "a is running"}]}
)" + std::string(kTemplates)));
  CHECK(Launches(f.Start()) == V{"wf[0].a"});
  auto actions = f.Send(StepStarted{"wf[0].a"});
  CHECK(Launches(actions) == V{"wf[0].a.hooks.running"});
  CHECK(Arg0(actions, "wf[0].a.hooks.running") == "a is running");
  f.Send(StepStarted{"wf[0].a.hooks.running"});
  CHECK(Launches(f.Finish("wf[0].a")).empty());  // not again
  f.Finish("wf[0].a.hooks.running");
  CHECK(f.state().phase == Phase::kSucceeded);
}

TEST_CASE("a workflow-level expression hook runs, and the workflow waits for it", "[scheduler][hooks]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  hooks:
    started:
      expression: workflow.status == "Running"
      template: echo
  templates:
  - name: main
    steps:
    - - {name: a, template: echo}
)" + std::string(kTemplates)));
  CHECK(Launches(f.Start()) == V{"wf[0].a", "wf.hooks.started"});
  f.Finish("wf[0].a");
  CHECK(f.state().phase == Phase::kRunning);
  f.Finish("wf.hooks.started");
  CHECK(f.state().phase == Phase::kSucceeded);
  // Replaying the recorded events gives the same state.
  auto fresh = NewWorkflow(*f.state().manifest, dag::TemplateLibrary(), f.state().uid, {});
  REQUIRE(fresh.has_value());
}

}  // namespace kiln::scheduler
