// Replay and resume (a run continued after kill -9), deadlines, parallelism and global outputs:
// the controller's side, with a fake clock and the fake executor.
#include <catch2/catch.hpp>

#include "scheduler/controller.h"
#include "tests/fakes/fake_executor.h"

namespace kiln::scheduler {

using testing::FakeExecutor;
using testing::Wf;
using testing::Kills;
using testing::Timers;
using testing::Launches;
using V = std::vector<std::string>;

namespace {

const char* kEcho = R"(
  - name: echo
    container: {image: busybox, command: [echo, hi]}
)";

// Every node's id, phase, message and children: what a replay must reproduce.
std::string Shape(const WorkflowState& s) {
  std::map<std::string, std::string> rows;
  for (const auto& [id, n] : s.nodes) {
    std::string row = std::string(PhaseName(n.phase)) + "|" + n.message + "|";
    for (const std::string& c : s.ChildrenOf(id)) row += c + ",";
    for (const auto& [k, v] : n.outputs) row += k + "=" + v + ";";
    rows[id] = row;
  }
  std::string out = std::string(PhaseName(s.phase)) + "\n";
  for (const auto& [id, row] : rows) out += id + ": " + row + "\n";
  return out;
}

}  // namespace

TEST_CASE("events round-trip through their JSON form", "[scheduler][durability]") {
  StepFinished f;
  f.node = "wf.a";
  f.exit_code = 3;
  f.error = true;
  f.message = "boom";
  f.outputs = {{"x", "1"}};
  f.result = "out";
  ArtifactRef ref;
  ref.sha256 = "ab";
  ref.location = "/data/artifacts/ab";
  ref.size = 7;
  f.artifacts["model"] = ref;
  auto back = EventFromJson(EventToJson(f));
  REQUIRE(back.has_value());
  const auto& g = std::get<StepFinished>(*back);
  CHECK(g.node == "wf.a");
  CHECK(g.exit_code == 3);
  CHECK(g.error);
  CHECK(g.message == "boom");
  CHECK(g.outputs == f.outputs);
  CHECK(g.result == f.result);
  CHECK(g.artifacts == f.artifacts);
  CHECK(std::holds_alternative<Resume>(*EventFromJson(EventToJson(Resume{}))));
  CHECK(std::get<TimerFired>(*EventFromJson(EventToJson(TimerFired{"retry:x"}))).timer == "retry:x");
  CHECK_FALSE(EventFromJson(nlohmann::json{{"type", "Nope"}}).has_value());
  CHECK_FALSE(EventFromJson(nlohmann::json{{"type", "StepStarted"}}).has_value());
}

TEST_CASE("replaying the recorded events rebuilds the same state", "[scheduler][durability]") {
  FakeExecutor f(Wf(R"(  entrypoint: d
  templates:
  - name: d
    dag:
      tasks:
      - {name: A, template: echo}
      - {name: B, depends: A, template: echo}
      - {name: C, depends: A, template: echo}
)" + std::string(kEcho)));
  f.Start();
  f.Finish("wf.A", 0, {{"k", "v"}});
  f.Send(StepStarted{"wf.B"});
  f.Finish("wf.C", 1);
  std::string before = Shape(f.state());
  f.Restart();
  CHECK(Shape(f.state()) == before);
}

TEST_CASE("resume: succeeded steps are not run again, a running step is lost and retried", "[scheduler][durability]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: echo}
    - - {name: b, template: flaky}
      - {name: c, template: echo}
    - - {name: d, template: echo}
  - name: flaky
    retryStrategy: {limit: 2, retryPolicy: Always}
    container: {image: busybox, command: [train]}
)" + std::string(kEcho)));
  f.Start();
  f.Finish("wf[0].a");
  f.Send(StepStarted{"wf[1].b(0)"});  // b's first attempt runs when kiln is killed;
  // c was decided (LaunchStep recorded) but never started.
  f.Restart();
  auto actions = f.Send(Resume{});
  // c is launched again as if for the first time; b's lost attempt is retried; a is not rerun.
  CHECK(Launches(actions) == V{"wf[1].b(1)", "wf[1].c"});
  CHECK(f.phase("wf[0].a") == Phase::kSucceeded);
  CHECK(f.phase("wf[1].b(0)") == Phase::kError);
  CHECK(f.node("wf[1].b(0)").message == "step lost: kiln stopped while it ran; its process is gone");
  f.Finish("wf[1].b(1)");
  CHECK(Launches(f.Finish("wf[1].c")) == V{"wf[2].d"});
  f.Finish("wf[2].d");
  CHECK(f.state().phase == Phase::kSucceeded);
  // a was launched once in the whole history.
  CHECK(std::count(f.launched().begin(), f.launched().end(), "wf[0].a") == 1);
}

TEST_CASE("resume: a lost step without retryStrategy ends in Error and fails the workflow", "[scheduler][durability]") {
  FakeExecutor f(Wf(R"(  entrypoint: echo
  templates:)" + std::string(kEcho)));
  f.Start();
  f.Send(StepStarted{"wf"});
  f.Restart();
  CHECK(Launches(f.Send(Resume{})).empty());
  CHECK(f.phase("wf") == Phase::kError);
  CHECK(f.state().phase == Phase::kError);
}

TEST_CASE("resume re-arms pending timers at their original time", "[scheduler][durability]") {
  FakeExecutor f(Wf(R"(  entrypoint: flaky
  templates:
  - name: flaky
    retryStrategy: {limit: 3, backoff: {duration: 30s}}
    container: {image: busybox, command: [train]}
)"));
  f.Start();
  auto actions = f.Finish("wf(0)", 1);
  REQUIRE(Timers(actions).size() == 1);
  StartTimer armed = Timers(actions)[0];
  CHECK(armed.timer == "retry:wf");
  f.Advance(std::chrono::seconds(5));
  f.Restart();
  actions = f.Send(Resume{});
  REQUIRE(Timers(actions).size() == 1);
  CHECK(Timers(actions)[0] == armed);
  CHECK(Launches(f.Send(TimerFired{"retry:wf"})) == V{"wf(1)"});
  CHECK(f.state().timers.empty());
}

TEST_CASE("a template timeout kills the step and fails it", "[scheduler][deadline]") {
  FakeExecutor f(Wf(R"(  entrypoint: d
  templates:
  - name: d
    dag:
      tasks:
      - {name: A, template: sleep, arguments: {parameters: [{name: t, value: 10s}]}}
  - name: sleep
    inputs: {parameters: [{name: t}]}
    timeout: "{{inputs.parameters.t}}"
    container: {image: busybox, command: [sleep, "15"]}
)"));
  auto actions = f.Start();
  REQUIRE(Timers(actions).size() == 1);
  CHECK(Timers(actions)[0].timer == "deadline:wf.A");
  CHECK(Timers(actions)[0].at == f.now() + std::chrono::seconds(10));
  f.Send(StepStarted{"wf.A"});
  f.Advance(std::chrono::seconds(10));
  CHECK(Kills(f.Send(TimerFired{"deadline:wf.A"})) == V{"wf.A"});
  StepFinished killed;
  killed.node = "wf.A";
  killed.exit_code = 143;
  f.Send(killed);
  CHECK(f.phase("wf.A") == Phase::kFailed);
  CHECK(f.node("wf.A").message == "Step exceeded its deadline");
  CHECK(f.state().phase == Phase::kFailed);
}

TEST_CASE("a step that ends before its deadline is not killed", "[scheduler][deadline]") {
  FakeExecutor f(Wf(R"(  entrypoint: sleep
  templates:
  - name: sleep
    activeDeadlineSeconds: 10
    container: {image: busybox, command: ["true"]}
)"));
  f.Start();
  f.Finish("wf");
  CHECK(Kills(f.Send(TimerFired{"deadline:wf"})).empty());
  CHECK(f.state().phase == Phase::kSucceeded);
}

TEST_CASE("workflow activeDeadlineSeconds stops every step and fails the workflow", "[scheduler][deadline]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  activeDeadlineSeconds: 30
  templates:
  - name: main
    steps:
    - - {name: a, template: echo}
      - {name: b, template: echo}
)" + std::string(kEcho)));
  auto actions = f.Start();
  REQUIRE(Timers(actions).size() == 1);
  CHECK(Timers(actions)[0].timer == "deadline:workflow");
  CHECK(Timers(actions)[0].at == f.now() + std::chrono::seconds(30));
  f.Finish("wf[0].a");
  f.Send(StepStarted{"wf[0].b"});
  CHECK(Kills(f.Send(TimerFired{"deadline:workflow"})) == V{"wf[0].b"});
  f.Finish("wf[0].b", 143);
  CHECK(f.node("wf[0].b").message == "Step exceeded its deadline");
  CHECK(f.state().phase == Phase::kFailed);
  CHECK(f.state().message == "Step exceeded its deadline");
}

TEST_CASE("the exit handler runs after a workflow deadline, and sees the failure", "[scheduler][deadline]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  activeDeadlineSeconds: 30
  onExit: bye
  templates:
  - name: main
    steps:
    - - {name: a, template: echo}
  - name: bye
    container: {image: busybox, command: [echo, "{{workflow.status}}"]}
)" + std::string(kEcho)));
  f.Start();
  f.Send(StepStarted{"wf[0].a"});
  CHECK(Kills(f.Send(TimerFired{"deadline:workflow"})) == V{"wf[0].a"});
  auto actions = f.Finish("wf[0].a", 143);
  REQUIRE(Launches(actions) == V{"wf.onExit"});
  const auto* launch = std::get_if<LaunchStep>(&actions[0]);
  REQUIRE(launch != nullptr);
  CHECK(launch->container["command"][1] == "Failed");
  CHECK(f.state().phase == Phase::kRunning);
  f.Finish("wf.onExit");
  CHECK(f.node("wf.onExit").phase == Phase::kSucceeded);
  CHECK(f.state().phase == Phase::kFailed);
  CHECK(f.state().message == "Step exceeded its deadline");
}

TEST_CASE("terminate skips the exit handler; a cancel while it runs stops it", "[scheduler][deadline]") {
  const std::string spec = Wf(R"(  entrypoint: main
  activeDeadlineSeconds: 30
  onExit: bye
  templates:
  - name: main
    steps:
    - - {name: a, template: echo}
  - name: bye
    container: {image: busybox, command: [echo, bye]}
)" + std::string(kEcho));
  {
    FakeExecutor f(spec);
    f.Start();
    f.Send(StepStarted{"wf[0].a"});
    CHECK(Kills(f.Send(CancelRequested{})) == V{"wf[0].a"});
    CHECK(Launches(f.Finish("wf[0].a", 143)).empty());
    CHECK(f.state().phase == Phase::kFailed);
    CHECK(f.state().message == "terminated by user");
  }
  {
    FakeExecutor f(spec);
    f.Start();
    f.Send(StepStarted{"wf[0].a"});
    f.Send(TimerFired{"deadline:workflow"});
    REQUIRE(Launches(f.Finish("wf[0].a", 143)) == V{"wf.onExit"});
    f.Send(StepStarted{"wf.onExit"});
    CHECK(Kills(f.Send(CancelRequested{})) == V{"wf.onExit"});
    f.Finish("wf.onExit", 143);
    CHECK(f.node("wf.onExit").phase == Phase::kFailed);
    CHECK(f.state().phase == Phase::kFailed);
    CHECK(f.state().message == "Step exceeded its deadline");
  }
}

TEST_CASE("template parallelism limits a fan-out; the rest wait in order", "[scheduler][parallelism]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    parallelism: 2
    steps:
    - - {name: s, template: echo, withItems: [1, 2, 3, 4]}
)" + std::string(kEcho)));
  CHECK(Launches(f.Start()) == V{"wf[0].s(0:1)", "wf[0].s(1:2)"});
  CHECK(f.phase("wf[0].s(2:3)") == Phase::kPending);
  CHECK(f.node("wf[0].s(2:3)").message == "waiting: parallelism 2 of template \"main\" reached");
  CHECK(Launches(f.Finish("wf[0].s(1:2)")) == V{"wf[0].s(2:3)"});
  CHECK(Launches(f.Finish("wf[0].s(0:1)")) == V{"wf[0].s(3:4)"});
  CHECK(f.node("wf[0].s(3:4)").message.empty());
  f.Finish("wf[0].s(2:3)");
  f.Finish("wf[0].s(3:4)");
  CHECK(f.state().phase == Phase::kSucceeded);
}

TEST_CASE("workflow parallelism limits running steps across the whole workflow", "[scheduler][parallelism]") {
  FakeExecutor f(Wf(R"(  entrypoint: d
  parallelism: 1
  templates:
  - name: d
    dag:
      tasks:
      - {name: A, template: echo}
      - {name: B, template: echo}
      - {name: C, template: echo}
)" + std::string(kEcho)));
  CHECK(Launches(f.Start()) == V{"wf.A"});
  CHECK(Launches(f.Finish("wf.A")) == V{"wf.B"});
  CHECK(Launches(f.Finish("wf.B")) == V{"wf.C"});
  f.Finish("wf.C");
  CHECK(f.state().phase == Phase::kSucceeded);
}

TEST_CASE("failFast omits tasks still waiting for parallelism", "[scheduler][parallelism]") {
  FakeExecutor f(Wf(R"(  entrypoint: d
  templates:
  - name: d
    parallelism: 1
    dag:
      tasks:
      - {name: A, template: echo}
      - {name: B, template: echo}
)" + std::string(kEcho)));
  CHECK(Launches(f.Start()) == V{"wf.A"});
  CHECK(Launches(f.Finish("wf.A", 1)).empty());
  CHECK(f.phase("wf.B") == Phase::kOmitted);
  CHECK(f.state().phase == Phase::kFailed);
}

TEST_CASE("cancel ends steps waiting for parallelism without running them", "[scheduler][parallelism]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  parallelism: 1
  templates:
  - name: main
    steps:
    - - {name: a, template: echo}
      - {name: b, template: echo}
)" + std::string(kEcho)));
  f.Start();
  CHECK(Kills(f.Send(CancelRequested{})) == V{"wf[0].a"});
  CHECK(f.phase("wf[0].b") == Phase::kFailed);
  CHECK(Launches(f.Finish("wf[0].a", 143)).empty());
  CHECK(f.state().phase == Phase::kFailed);
  CHECK(f.state().message == "terminated by user");
}

TEST_CASE("outputs with a globalName become workflow outputs", "[scheduler][outputs]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: gen, template: gen}
    - - {name: use, template: use}
  - name: gen
    container: {image: busybox, command: [gen]}
    outputs:
      parameters: [{name: p, valueFrom: {path: /tmp/p}, globalName: best}]
  - name: use
    container: {image: busybox, command: [echo, "{{workflow.outputs.parameters.best}}"]}
)"));
  f.Start();
  auto actions = f.Finish("wf[0].gen", 0, {{"p", "0.93"}});
  REQUIRE(Launches(actions) == V{"wf[1].use"});
  CHECK(std::get<LaunchStep>(actions[0]).container["command"].dump() == R"(["echo","0.93"])");
  CHECK(f.state().global_parameters == std::map<std::string, std::string>{{"best", "0.93"}});
}

}  // namespace kiln::scheduler
