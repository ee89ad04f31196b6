#include "scheduler/controller.h"

#include <catch2/catch.hpp>

#include "tests/fakes/fake_executor.h"

namespace kiln::scheduler {

using testing::FakeExecutor;
using testing::Wf;
using testing::Launches;
using V = std::vector<std::string>;

namespace {

const char* kEcho = R"(
  - name: echo
    inputs: {parameters: [{name: msg, default: hi}]}
    outputs: {parameters: [{name: out, valueFrom: {path: /tmp/out}}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.msg}}"]}
)";

std::string ArgsOf(const std::vector<Action>& actions, const std::string& node) {
  for (const auto& a : actions) {
    if (const auto* l = std::get_if<LaunchStep>(&a); l && l->node == node) return l->container["command"].dump();
  }
  return "";
}

}  // namespace

TEST_CASE("steps run group by group, in parallel inside a group", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: echo}
    - - {name: b, template: echo, arguments: {parameters: [{name: msg, value: B}]}}
      - {name: c, template: echo}
)" + std::string(kEcho)));
  CHECK(Launches(f.Start()) == V{"wf[0].a"});
  CHECK(f.state().phase == Phase::kRunning);
  auto actions = f.Finish("wf[0].a");
  CHECK(Launches(actions) == V{"wf[1].b", "wf[1].c"});
  CHECK(ArgsOf(actions, "wf[1].b") == R"(["echo","B"])");
  CHECK(Launches(f.Finish("wf[1].b")).empty());
  CHECK(f.state().phase == Phase::kRunning);
  f.Finish("wf[1].c");
  CHECK(f.state().phase == Phase::kSucceeded);
  CHECK(f.phase("wf") == Phase::kSucceeded);
  CHECK(f.node("wf").type == NodeType::kSteps);
  CHECK(f.node("wf[1]").type == NodeType::kStepGroup);
}

TEST_CASE("a DAG runs tasks as their depends allow and passes outputs", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: d
  templates:
  - name: d
    dag:
      tasks:
      - {name: A, template: echo}
      - {name: B, depends: A, template: echo, arguments: {parameters: [{name: msg, value: "{{tasks.A.outputs.parameters.out}}"}]}}
      - {name: C, depends: A, template: echo}
      - {name: D, depends: B && C, template: echo}
)" + std::string(kEcho)));
  CHECK(Launches(f.Start()) == V{"wf.A"});
  auto actions = f.Finish("wf.A", 0, {{"out", "from-A"}});
  CHECK(Launches(actions) == V{"wf.B", "wf.C"});
  CHECK(ArgsOf(actions, "wf.B") == R"(["echo","from-A"])");
  CHECK(Launches(f.Finish("wf.C")).empty());
  CHECK(Launches(f.Finish("wf.B")) == V{"wf.D"});
  f.Finish("wf.D");
  CHECK(f.state().phase == Phase::kSucceeded);
}

TEST_CASE("when skips a step and depends on a result routes around it", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: flip, template: echo}
    - - {name: heads, template: echo, when: "{{steps.flip.outputs.result}} == heads"}
      - {name: tails, template: echo, when: "{{steps.flip.outputs.result}} == tails"}
)" + std::string(kEcho)));
  f.Start();
  auto actions = f.Finish("wf[0].flip", 0, {}, "heads");
  CHECK(Launches(actions) == V{"wf[1].heads"});
  CHECK(f.phase("wf[1].tails") == Phase::kSkipped);
  CHECK(f.node("wf[1].tails").message == "when 'heads == tails' evaluated false");
  f.Finish("wf[1].heads");
  CHECK(f.state().phase == Phase::kSucceeded);
}

TEST_CASE("withItems fans out and aggregates outputs", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: d
  templates:
  - name: d
    dag:
      tasks:
      - name: sweep
        template: echo
        arguments: {parameters: [{name: msg, value: "lr={{item.lr}}"}]}
        withItems: [{lr: 0.1}, {lr: 0.5}]
      - {name: pick, depends: sweep, template: echo, arguments: {parameters: [{name: msg, value: "{{tasks.sweep.outputs.parameters}}"}]}}
)" + std::string(kEcho)));
  auto actions = f.Start();
  CHECK(Launches(actions) == V{"wf.sweep(0:{\"lr\":0.1})", "wf.sweep(1:{\"lr\":0.5})"});
  CHECK(ArgsOf(actions, "wf.sweep(1:{\"lr\":0.5})") == R"(["echo","lr=0.5"])");
  f.Finish("wf.sweep(0:{\"lr\":0.1})", 0, {{"out", "a"}});
  actions = f.Finish("wf.sweep(1:{\"lr\":0.5})", 0, {{"out", "b"}});
  CHECK(f.node("wf.sweep").type == NodeType::kTaskGroup);
  CHECK(ArgsOf(actions, "wf.pick") == R"(["echo","[{\"out\":\"a\"},{\"out\":\"b\"}]"])");
}

TEST_CASE("withSequence and withParam expand to their items", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: seq, template: echo, arguments: {parameters: [{name: msg, value: "{{item}}"}]}, withSequence: {start: "2", end: "4", format: "n%02d"}}
    - - {name: par, template: echo, arguments: {parameters: [{name: msg, value: "{{item}}"}]}, withParam: "{{steps.seq.outputs.parameters}}"}
)" + std::string(kEcho)));
  CHECK(Launches(f.Start()) == V{"wf[0].seq(0:n02)", "wf[0].seq(1:n03)", "wf[0].seq(2:n04)"});
  f.Finish("wf[0].seq(0:n02)", 0, {{"out", "x"}});
  f.Finish("wf[0].seq(1:n03)", 0, {{"out", "y"}});
  auto actions = f.Finish("wf[0].seq(2:n04)", 0, {{"out", "z"}});
  CHECK(Launches(actions).size() == 3);
}

TEST_CASE("retryStrategy retries failures with backoff, then gives up", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: flaky
  templates:
  - name: flaky
    retryStrategy: {limit: 2, backoff: {duration: 10s, factor: 2}}
    container: {image: busybox, command: [sh, -c, "exit 1"]}
)"));
  CHECK(Launches(f.Start()) == V{"wf(0)"});
  CHECK(f.node("wf").type == NodeType::kRetry);
  auto actions = f.Finish("wf(0)", 1);
  REQUIRE(actions.size() == 1);
  CHECK(std::get<StartTimer>(actions[0]) == StartTimer{"retry:wf", f.now() + std::chrono::seconds(10)});
  f.Advance(std::chrono::seconds(10));
  CHECK(Launches(f.Send(TimerFired{"retry:wf"})) == V{"wf(1)"});
  actions = f.Finish("wf(1)", 1);
  CHECK(std::get<StartTimer>(actions[0]) == StartTimer{"retry:wf", f.now() + std::chrono::seconds(20)});
  f.Advance(std::chrono::seconds(20));
  f.Send(TimerFired{"retry:wf"});
  f.Finish("wf(2)", 1);
  CHECK(f.phase("wf") == Phase::kFailed);
  CHECK(f.node("wf").message == "No more retries left: Error (exit code 1)");
  CHECK(f.state().phase == Phase::kFailed);
}

TEST_CASE("a retried step that succeeds succeeds its retry node", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: flaky
  templates:
  - name: flaky
    retryStrategy: {limit: "3", retryPolicy: OnFailure}
    container: {image: busybox}
)"));
  f.Start();
  CHECK(Launches(f.Finish("wf(0)", 2)) == V{"wf(1)"});
  f.Finish("wf(1)", 0);
  CHECK(f.state().phase == Phase::kSucceeded);
}

TEST_CASE("failFast stops a DAG from starting tasks after a failure; continueOn tolerates it", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: d
  templates:
  - name: d
    dag:
      tasks:
      - {name: a, template: echo}
      - {name: b, template: echo}
      - {name: c, depends: b, template: echo}
)" + std::string(kEcho)));
  CHECK(Launches(f.Start()) == V{"wf.a", "wf.b"});
  f.Finish("wf.a", 1);
  CHECK(Launches(f.Finish("wf.b")).empty());  // c is not started: the DAG fails fast
  CHECK(f.state().phase == Phase::kFailed);

  FakeExecutor g(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: echo, continueOn: {failed: true}}
    - - {name: b, template: echo}
)" + std::string(kEcho)));
  g.Start();
  CHECK(Launches(g.Finish("wf[0].a", 3)) == V{"wf[1].b"});
  g.Finish("wf[1].b");
  CHECK(g.state().phase == Phase::kSucceeded);
}

TEST_CASE("depends on .Failed runs a handler task only on failure; others are omitted", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: d
  templates:
  - name: d
    dag:
      failFast: false
      tasks:
      - {name: a, template: echo}
      - {name: on-fail, depends: a.Failed, template: echo}
      - {name: on-ok, depends: a.Succeeded, template: echo}
)" + std::string(kEcho)));
  f.Start();
  CHECK(Launches(f.Finish("wf.a", 1)) == V{"wf.on-fail"});
  CHECK(f.phase("wf.on-ok") == Phase::kOmitted);
  f.Finish("wf.on-fail");
  CHECK(f.state().phase == Phase::kFailed);  // a failed and nothing tolerated it
}

TEST_CASE("the exit handler sees workflow.status and the workflow ends as its main graph did", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  onExit: exit
  templates:
  - name: main
    container: {image: busybox}
  - name: exit
    steps:
    - - {name: celebrate, template: echo, when: "{{workflow.status}} == Succeeded"}
      - {name: cry, template: echo, when: "{{workflow.status}} != Succeeded", arguments: {parameters: [{name: msg, value: "{{workflow.status}}"}]}}
)" + std::string(kEcho)));
  CHECK(Launches(f.Start()) == V{"wf"});
  auto actions = f.Finish("wf", 1);
  CHECK(Launches(actions) == V{"wf.onExit[0].cry"});
  CHECK(ArgsOf(actions, "wf.onExit[0].cry") == R"(["echo","Failed"])");
  CHECK(f.state().phase == Phase::kRunning);  // until the handler ends
  f.Finish("wf.onExit[0].cry");
  CHECK(f.state().phase == Phase::kFailed);
}

TEST_CASE("spec.hooks.exit is the exit handler, with its arguments", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  hooks:
    exit:
      template: echo
      arguments: {parameters: [{name: msg, value: "done: {{workflow.status}}"}]}
  templates:
  - name: main
    container: {image: busybox}
)" + std::string(kEcho)));
  f.Start();
  auto actions = f.Finish("wf");
  CHECK(Launches(actions) == V{"wf.onExit"});
  CHECK(ArgsOf(actions, "wf.onExit") == R"(["echo","done: Succeeded"])");
  f.Finish("wf.onExit");
  CHECK(f.state().phase == Phase::kSucceeded);
}

TEST_CASE("cancel kills running steps and fails the workflow", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: echo}
      - {name: b, template: echo}
    - - {name: c, template: echo}
)" + std::string(kEcho)));
  f.Start();
  f.Send(StepStarted{"wf[0].a"});
  auto actions = f.Send(CancelRequested{});
  REQUIRE(actions.size() == 2);
  CHECK(std::get<KillStep>(actions[0]).node.starts_with("wf[0]."));
  f.Finish("wf[0].a", 143);
  CHECK(Launches(f.Finish("wf[0].b", 143)).empty());
  CHECK(f.state().phase == Phase::kFailed);
  CHECK(f.state().message == "terminated by user");
}

TEST_CASE("an executable that cannot run ends its step in Error", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, command: [no-such-binary]}
)"));
  f.Start();
  StepFinished e;
  e.node = "wf";
  e.error = true;
  e.exit_code = -1;
  e.message = "executable not found: no-such-binary";
  f.Send(e);
  CHECK(f.phase("wf") == Phase::kError);
  CHECK(f.state().phase == Phase::kError);
  CHECK(f.state().message == "executable not found: no-such-binary");
}

TEST_CASE("unsupported template types fail at run time with a clear message", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    http: {url: "https://example.com"}
)"));
  f.Start();
  CHECK(f.phase("wf") == Phase::kError);
  CHECK(f.node("wf").message == "template type http is not supported by this executor");
}

TEST_CASE("workflow parameters come from arguments and -p overrides", "[scheduler]") {
  std::string y = Wf(R"(  entrypoint: main
  arguments: {parameters: [{name: who, value: world}]}
  templates:
  - name: main
    inputs: {parameters: [{name: who}]}
    container: {image: busybox, command: [echo, "hello {{inputs.parameters.who}} {{workflow.parameters.who}}"]}
)");
  FakeExecutor f(y, {{"who", "kiln"}});
  CHECK(ArgsOf(f.Start(), "wf") == R"(["echo","hello kiln kiln"])");
}

TEST_CASE("replayed events change nothing", "[scheduler]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    container: {image: busybox}
)"));
  f.Start();
  CHECK(f.Start().empty());
  f.Finish("wf");
  CHECK(f.Finish("wf").empty());
  CHECK(f.state().phase == Phase::kSucceeded);
}

}  // namespace kiln::scheduler
