// Argo's suspend/resume of a whole workflow and retry of a failed one, as controller events.
#include <catch2/catch.hpp>

#include "scheduler/controller.h"
#include "scheduler/node_selector.h"
#include "tests/fakes/fake_executor.h"

namespace kiln::scheduler {

using testing::FakeExecutor;
using testing::Kills;
using testing::Launches;
using testing::Timers;
using testing::Wf;
using V = std::vector<std::string>;

namespace {

const char* kStep = R"(
  - name: step
    inputs: {parameters: [{name: msg, default: hi}]}
    container: {image: busybox, command: [echo, "{{inputs.parameters.msg}}"]}
)";

// A -> B -> C, and D on its own; onExit runs `step`.
std::string Diamond() {
  return Wf(R"(  entrypoint: d
  onExit: step
  templates:
  - name: d
    dag:
      tasks:
      - {name: A, template: step}
      - {name: B, depends: A, template: step}
      - {name: C, depends: B, template: step}
      - {name: D, template: step}
)" + std::string(kStep));
}

V Ids(const WorkflowState& s) {
  V ids;
  for (const auto& [id, n] : s.nodes) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

// Everything a replay must rebuild, as text (node order fixed).
std::string Summary(const WorkflowState& s) {
  std::string out = std::string(PhaseName(s.phase)) + " msg=" + s.message + " suspended=" +
                    (s.suspended ? "1" : "0") + " exit=" + s.exit_root + "\n";
  for (const auto& [k, v] : s.parameters) out += "param " + k + "=" + v + "\n";
  for (const std::string& id : Ids(s)) {
    const NodeState& n = s.nodes.at(id);
    out += id + " " + std::string(PhaseName(n.phase)) + " " + n.message + (n.deferred ? " deferred" : "") + "\n";
  }
  std::map<std::string, std::vector<std::string>> children(s.children.begin(), s.children.end());
  for (const auto& [p, c] : children) {
    out += "children " + p + ":";
    for (const std::string& id : c) out += " " + id;
    out += "\n";
  }
  std::map<std::string, ChildTally> tallies(s.tallies.begin(), s.tallies.end());
  for (const auto& [p, t] : tallies) {
    if (t.done != 0 || t.failed != 0) out += "tally " + p + " " + std::to_string(t.done) + "/" + std::to_string(t.failed) + "\n";
  }
  for (const std::string& id : s.deferred) out += "waits " + id + "\n";
  for (const auto& [name, at] : s.timers) out += "timer " + name + "\n";
  return out;
}

}  // namespace

TEST_CASE("a suspended workflow starts no step until it is resumed", "[scheduler][suspend]") {
  FakeExecutor f(Diamond());
  CHECK(Launches(f.Start()) == V{"wf.A", "wf.D"});
  CHECK(f.Send(SuspendRequested{}).empty());
  CHECK(f.state().suspended);
  CHECK(f.Send(SuspendRequested{}).empty());  // again: nothing changes
  // A running step goes on and its result is recorded; what becomes ready waits.
  CHECK(Launches(f.Finish("wf.A")).empty());
  CHECK(f.phase("wf.A") == Phase::kSucceeded);
  CHECK(f.phase("wf.B") == Phase::kPending);
  CHECK(f.node("wf.B").deferred);
  CHECK(f.node("wf.B").message == "waiting: the workflow is suspended");
  CHECK(f.state().phase == Phase::kRunning);
  f.Finish("wf.D");
  CHECK(f.state().phase == Phase::kRunning);
  // Resume: what waited starts.
  CHECK(Launches(f.Send(ResumeRequested{})) == V{"wf.B"});
  CHECK_FALSE(f.state().suspended);
  CHECK(f.node("wf.B").message.empty());
  CHECK(Launches(f.Finish("wf.B")) == V{"wf.C"});
  CHECK(Launches(f.Finish("wf.C")) == V{"wf.onExit"});
  f.Finish("wf.onExit");
  CHECK(f.state().phase == Phase::kSucceeded);
  // A finished workflow is not suspended.
  CHECK(f.Send(SuspendRequested{}).empty());
  CHECK_FALSE(f.state().suspended);
}

TEST_CASE("a suspended workflow's retry timers fire without starting the attempt", "[scheduler][suspend]") {
  FakeExecutor f(Wf(R"(  entrypoint: flaky
  templates:
  - name: flaky
    retryStrategy: {limit: 2, backoff: {duration: 10s}}
    container: {image: busybox}
)"));
  CHECK(Launches(f.Start()) == V{"wf(0)"});
  f.Send(SuspendRequested{});
  CHECK(Timers(f.Finish("wf(0)", 1)).size() == 1);
  f.Advance(std::chrono::seconds(10));
  CHECK(Launches(f.Send(TimerFired{"retry:wf"})).empty());
  CHECK(f.phase("wf(1)") == Phase::kPending);
  CHECK(Launches(f.Send(ResumeRequested{})) == V{"wf(1)"});
}

TEST_CASE("resume succeeds waiting suspend nodes; a deadline still counts while suspended", "[scheduler][suspend]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  activeDeadlineSeconds: 60
  onExit: step
  templates:
  - name: main
    steps:
    - - {name: wait, template: gate}
    - - {name: work, template: step}
  - name: gate
    suspend: {}
)" + std::string(kStep)));
  f.Start();
  CHECK(f.phase("wf[0].wait") == Phase::kRunning);
  CHECK(Launches(f.Send(ResumeRequested{})) == V{"wf[1].work"});
  CHECK(f.phase("wf[0].wait") == Phase::kSucceeded);
  f.Send(SuspendRequested{});
  f.Advance(std::chrono::seconds(60));
  // The deadline stops the workflow: the running step is killed and the exit handler runs
  // (a stop ends the suspension's hold).
  auto actions = f.Send(TimerFired{"deadline:workflow"});
  CHECK(testing::Kills(actions) == V{"wf[1].work"});
  CHECK(Launches(f.Finish("wf[1].work", 143)) == V{"wf.onExit"});
  f.Finish("wf.onExit");
  CHECK(f.state().phase == Phase::kFailed);
}

TEST_CASE("retry runs the failed nodes again and keeps the succeeded ones", "[scheduler][retry]") {
  FakeExecutor f(Diamond());
  f.Start();
  f.Finish("wf.D");
  CHECK(Launches(f.Finish("wf.A")) == V{"wf.B"});
  CHECK(Launches(f.Finish("wf.B", 1)) == V{"wf.onExit"});  // failFast: C is never created
  f.Finish("wf.onExit");
  REQUIRE(f.state().phase == Phase::kFailed);
  CHECK_FALSE(f.state().message.empty());

  // B runs again, C waits for it, the exit handler runs again at the end.
  auto actions = f.Send(RetryRequested{});
  CHECK(Launches(actions) == V{"wf.B"});
  CHECK(f.state().phase == Phase::kRunning);
  CHECK(f.state().message.empty());
  CHECK(f.state().finished == Time{});
  CHECK(f.state().exit_root.empty());
  CHECK(Ids(f.state()) == V{"wf", "wf.A", "wf.B", "wf.D"});
  CHECK(f.phase("wf") == Phase::kRunning);
  CHECK(f.phase("wf.A") == Phase::kSucceeded);
  CHECK(f.phase("wf.B") == Phase::kPending);
  CHECK(Launches(f.Finish("wf.B")) == V{"wf.C"});
  CHECK(Launches(f.Finish("wf.C")) == V{"wf.onExit"});
  f.Finish("wf.onExit");
  CHECK(f.state().phase == Phase::kSucceeded);
  CHECK(f.launched() == V{"wf.A", "wf.D", "wf.B", "wf.onExit", "wf.B", "wf.C", "wf.onExit"});
  // A succeeded workflow is not retried.
  CHECK(f.Send(RetryRequested{}).empty());
  CHECK(f.state().phase == Phase::kSucceeded);

  // The replayed events (suspend, retry and all) rebuild the same state.
  std::string before = Summary(f.state());
  f.Restart();
  CHECK(Summary(f.state()) == before);
}

TEST_CASE("retry gives a Retry node a fresh budget and removes its old attempts", "[scheduler][retry]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: ok, template: step}
    - - {name: flaky, template: flaky}
  - name: flaky
    retryStrategy: {limit: 1}
    container: {image: busybox}
)" + std::string(kStep)));
  f.Start();
  f.Finish("wf[0].ok");
  f.Finish("wf[1].flaky(0)", 1);
  f.Finish("wf[1].flaky(1)", 1);
  REQUIRE(f.state().phase == Phase::kFailed);
  Transition t = Decide(f.state(), f.library(), RetryRequested{}, f.now());
  CHECK(t.removed == V{"wf[1].flaky(0)", "wf[1].flaky(1)"});
  CHECK(Launches(f.Send(RetryRequested{})) == V{"wf[1].flaky(0)"});
  CHECK(f.state().nodes.count("wf[1].flaky(1)") == 0);
  CHECK(f.state().children.at("wf[1].flaky") == V{"wf[1].flaky(0)"});
  CHECK(f.phase("wf[0].ok") == Phase::kSucceeded);
  CHECK(Launches(f.Finish("wf[1].flaky(0)", 1)) == V{"wf[1].flaky(1)"});
  f.Finish("wf[1].flaky(1)");
  CHECK(f.state().phase == Phase::kSucceeded);
  std::string before = Summary(f.state());
  f.Restart();
  CHECK(Summary(f.state()) == before);
}

TEST_CASE("retry with restartSuccessful runs matched succeeded nodes and what depends on them", "[scheduler][retry]") {
  FakeExecutor f(Diamond());
  f.Start();
  f.Finish("wf.D");
  f.Finish("wf.A");
  f.Finish("wf.B", 1);
  f.Finish("wf.onExit");
  RetryRequested r;
  r.restart_successful = true;
  r.node_field_selector = "displayName=A";
  CHECK(Launches(f.Send(r)) == V{"wf.A"});
  CHECK(Ids(f.state()) == V{"wf", "wf.A", "wf.D"});  // B (and C) wait for A again
  CHECK(Launches(f.Finish("wf.A")) == V{"wf.B"});
}

TEST_CASE("retry of steps and fan-outs re-creates only the failed items", "[scheduler][retry]") {
  FakeExecutor f(Wf(R"(  entrypoint: main
  arguments:
    parameters: [{name: lr, value: "0.1"}]
  templates:
  - name: main
    steps:
    - - {name: a, template: step}
    - - {name: sweep, template: step, arguments: {parameters: [{name: msg, value: "{{item}}-{{workflow.parameters.lr}}"}]}, withItems: [x, z]}
      - {name: c, template: step}
    - - {name: last, template: step}
)" + std::string(kStep)));
  f.Start();
  f.Finish("wf[0].a");
  f.Finish("wf[1].sweep(0:x)");
  f.Finish("wf[1].c");
  f.Finish("wf[1].sweep(1:z)", 2);
  INFO(Summary(f.state()));
  REQUIRE(f.state().phase == Phase::kFailed);
  RetryRequested r;
  r.parameters = {{"lr", "0.5"}};
  auto actions = f.Send(r);
  CHECK(Launches(actions) == V{"wf[1].sweep(1:z)"});
  const auto& launch = std::get<LaunchStep>(actions[0]);
  CHECK(launch.container["command"].dump() == R"(["echo","z-0.5"])");
  CHECK(f.state().parameters.at("lr") == "0.5");
  CHECK(Launches(f.Finish("wf[1].sweep(1:z)")) == V{"wf[2].last"});
  f.Finish("wf[2].last");
  CHECK(f.state().phase == Phase::kSucceeded);
  std::string before = Summary(f.state());
  f.Restart();
  CHECK(Summary(f.state()) == before);
}

TEST_CASE("suspend and resume survive a replay", "[scheduler][suspend]") {
  FakeExecutor f(Diamond());
  f.Start();
  f.Send(SuspendRequested{});
  f.Finish("wf.A");
  std::string before = Summary(f.state());
  f.Restart();
  CHECK(Summary(f.state()) == before);
  CHECK(f.state().suspended);
  CHECK(Launches(f.Send(Resume{})) == V{"wf.D"});  // decided before the suspend: launched again
  CHECK(Launches(f.Send(ResumeRequested{})) == V{"wf.B"});
}

TEST_CASE("node field selectors", "[scheduler][retry]") {
  NodeState n;
  n.id = "wf.train";
  n.name = "train";
  n.template_name = "fit";
  n.phase = Phase::kSucceeded;
  n.inputs = {{"lr", "0.1"}};
  auto match = [&](const std::string& s) {
    auto sel = ParseNodeSelector(s);
    REQUIRE(sel);
    return Matches(*sel, n);
  };
  CHECK(match(""));
  CHECK(match("displayName=train"));
  CHECK(match("name==wf.train, templateName=fit"));
  CHECK_FALSE(match("displayName=train,phase!=Succeeded"));
  CHECK(match("inputs.parameters.lr.value=0.1"));
  CHECK_FALSE(match("inputs.parameters.other.value=0.1"));
  CHECK(match("type=Pod"));
  CHECK(ParseNodeSelector("colour=red").error().message() ==
        "nodeFieldSelector: unknown field \"colour\"; one of id, name, displayName, templateName, phase, type, "
        "inputs.parameters.NAME.value");
  CHECK(ParseNodeSelector("displayName").error().message() ==
        "nodeFieldSelector: \"displayName\" is not FIELD=VALUE, FIELD==VALUE or FIELD!=VALUE");
}

}  // namespace kiln::scheduler

namespace kiln::scheduler {

TEST_CASE("StepWaiting shows why a launched step waits, until it runs; it is recorded and replayed",
          "[scheduler][waiting]") {
  FakeExecutor f(Diamond());
  CHECK(Launches(f.Start()) == V{"wf.A", "wf.D"});
  const std::string why = "0/5 nodes are available: 5 Insufficient nvidia.com/gpu.";
  CHECK(f.Send(StepWaiting{"wf.A", why}).empty());
  CHECK(f.phase("wf.A") == Phase::kPending);
  CHECK(f.node("wf.A").message == why);
  f.Restart();
  CHECK(f.node("wf.A").message == why);
  f.Send(StepWaiting{"wf.A", ""});
  CHECK(f.node("wf.A").message.empty());
  f.Send(StepStarted{"wf.A"});
  // A running or finished step ignores it; so does an unknown node.
  f.Send(StepWaiting{"wf.A", why});
  CHECK(f.node("wf.A").message.empty());
  f.Send(StepWaiting{"wf.nope", why});
  CHECK(EventToJson(StepWaiting{"wf.A", why}) ==
        nlohmann::json{{"type", "StepWaiting"}, {"node", "wf.A"}, {"message", why}});
  auto back = EventFromJson(EventToJson(StepWaiting{"wf.A", why}));
  REQUIRE(back.has_value());
  REQUIRE(std::holds_alternative<StepWaiting>(*back));
  CHECK(std::get<StepWaiting>(*back).message == why);
}

}  // namespace kiln::scheduler

namespace kiln::scheduler {

TEST_CASE("Resume with adopt_running launches running steps again; in a cancelled run it kills them too",
          "[scheduler][resume]") {
  SECTION("running") {
    FakeExecutor f(Diamond());
    CHECK(Launches(f.Start()) == V{"wf.A", "wf.D"});
    f.Send(StepStarted{"wf.A"});
    f.Restart();
    auto actions = f.Send(Resume{true});
    CHECK(Launches(actions) == V{"wf.A", "wf.D"});  // adopted by the executor, same attempt
    CHECK(Kills(actions).empty());
    CHECK(f.phase("wf.A") == Phase::kRunning);
    CHECK(Launches(f.Finish("wf.A")) == V{"wf.B"});
  }
  SECTION("running, without adoption: lost") {
    FakeExecutor f(Diamond());
    f.Start();
    f.Send(StepStarted{"wf.A"});
    f.Restart();
    CHECK(Launches(f.Send(Resume{})) == V{"wf.D"});
    CHECK(f.phase("wf.A") == Phase::kError);
  }
  SECTION("cancelled before the kills were done") {
    FakeExecutor f(Diamond());
    f.Start();
    f.Send(StepStarted{"wf.A"});
    V kills = Kills(f.Send(CancelRequested{}));
    std::sort(kills.begin(), kills.end());
    CHECK(kills == V{"wf.A", "wf.D"});
    f.Restart();  // kiln died before the executor deleted the Jobs
    auto actions = f.Send(Resume{true});
    CHECK(Launches(actions) == V{"wf.A", "wf.D"});
    CHECK(Kills(actions) == V{"wf.A", "wf.D"});
    CHECK(f.state().phase == Phase::kRunning);  // until the kills report
    for (const char* node : {"wf.A", "wf.D"}) {
      StepFinished killed;
      killed.node = node;
      killed.exit_code = 137;
      f.Send(killed);
    }
    CHECK(f.state().phase == Phase::kFailed);
    CHECK(f.phase("wf.A") == Phase::kFailed);
  }
}

}  // namespace kiln::scheduler
