// cli/tree_view.h: the live tree of `kiln run`, rendered from hand-built workflow states.
#include "cli/tree_view.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

namespace kiln::cli {
namespace {

using scheduler::NodeState;
using scheduler::NodeType;
using scheduler::Phase;
using scheduler::Time;
using Lines = std::vector<std::string>;

// `ms` milliseconds after the run's start.
Time At(int64_t ms) { return Time(std::chrono::milliseconds(1'700'000'000'000 + ms)); }
constexpr int64_t kNotYet = -1;

void Add(scheduler::WorkflowState& s, const std::string& id, const std::string& name,
         const std::string& parent, NodeType type, Phase phase, int64_t started = kNotYet,
         int64_t finished = kNotYet, const std::string& message = "") {
  NodeState n;
  n.id = id;
  n.name = name;
  n.parent = parent;
  n.type = type;
  n.phase = phase;
  if (started != kNotYet) n.started = At(started);
  if (finished != kNotYet) n.finished = At(finished);
  n.message = message;
  s.nodes[id] = std::move(n);
}

// A steps workflow 5 s into its run: a one-step group (not drawn), then a parallel group with a
// skipped step, a step that could not run, and a retried step on its second attempt.
scheduler::WorkflowState Running() {
  scheduler::WorkflowState s;
  s.name = "wf";
  s.phase = Phase::kRunning;
  s.started = At(0);
  s.root = "wf";
  Add(s, "wf", "wf", "", NodeType::kSteps, Phase::kRunning, 0);
  Add(s, "wf[0]", "[0]", "wf", NodeType::kStepGroup, Phase::kSucceeded, 0, 1000);
  Add(s, "wf[0].prep", "prep", "wf[0]", NodeType::kPod, Phase::kSucceeded, 0, 1000);
  Add(s, "wf[1]", "[1]", "wf", NodeType::kStepGroup, Phase::kRunning, 1000);
  Add(s, "wf[1].train", "train", "wf[1]", NodeType::kRetry, Phase::kRunning, 1000);
  Add(s, "wf[1].train(0)", "train(0)", "wf[1].train", NodeType::kPod, Phase::kFailed, 1000, 2500);
  s.nodes["wf[1].train(0)"].exit_code = 1;
  Add(s, "wf[1].train(1)", "train(1)", "wf[1].train", NodeType::kPod, Phase::kRunning, 2500);
  s.nodes["wf[1].train(1)"].attempt = 1;
  Add(s, "wf[1].lint", "lint", "wf[1]", NodeType::kPod, Phase::kError, 1000, 1200,
      "cannot run \"ruff\":\nno such file");
  Add(s, "wf[1].docs", "docs", "wf[1]", NodeType::kSkipped, Phase::kSkipped, 1000, 1000,
      "when 'false' evaluated false");
  return s;
}

TreeViewOptions Ascii() {
  TreeViewOptions o;
  o.unicode = false;
  return o;
}

TEST_CASE("tree view draws nesting, durations, retries and failure messages", "[cli]") {
  Lines want = {
      "wf  Running  5.0s",
      "* wf                     5.0s",
      "|- + prep                1.0s",
      "`- * [1]",
      "   |- - docs             0.0s",
      "   |- ! lint             0.2s  cannot run \"ruff\": no such file",
      "   `- * train (1 retry)  4.0s",
      "      |- x train(0)      1.5s  exit code 1",
      "      `- * train(1)      2.5s",
  };
  CHECK(RenderTree(Running(), At(5000), Ascii()) == want);
}

TEST_CASE("tree view draws box glyphs and symbols in Unicode", "[cli]") {
  Lines want = {
      "wf  Running  5.0s",
      "● wf                     5.0s",
      "├─ ✔ prep                1.0s",
      "└─ ● [1]",
      "   ├─ ○ docs             0.0s",
      "   ├─ ⚠ lint             0.2s  cannot run \"ruff\": no such file",
      "   └─ ● train (1 retry)  4.0s",
      "      ├─ ✖ train(0)      1.5s  exit code 1",
      "      └─ ● train(1)      2.5s",
  };
  CHECK(RenderTree(Running(), At(5000), TreeViewOptions{}) == want);
}

TEST_CASE("tree view counts running durations up to now and formats long ones", "[cli]") {
  scheduler::WorkflowState s;
  s.name = "long";
  s.phase = Phase::kRunning;
  s.started = At(0);
  s.root = "long";
  Add(s, "long", "long", "", NodeType::kDag, Phase::kRunning, 0);
  Add(s, "long.a", "a", "long", NodeType::kPod, Phase::kSucceeded, 0, 187'000);
  Add(s, "long.b", "b", "long", NodeType::kPod, Phase::kRunning, 187'000);
  Add(s, "long.c", "c", "long", NodeType::kPod, Phase::kPending);
  Lines want = {
      "long  Running  2h05m", "* long  2h05m", "|- + a  3m07s", "|- * b  2h01m", "`- . c",
  };
  CHECK(RenderTree(s, At(7'500'000), Ascii()) == want);
}

TEST_CASE("tree view cuts lines to the terminal's width", "[cli]") {
  TreeViewOptions o = Ascii();
  o.columns = 30;
  Lines want = {
      "wf  Running  5.0s",        "* wf                5.0s",
      "|- + prep           1.0s", "`- * [1]",
      "   |- - docs        0.0s", "   |- ! lint        0.2s  c...",
      "   `- * train (...  4.0s", "      |- x trai...  1.5s  e...",
      "      `- * trai...  2.5s",
  };
  Lines got = RenderTree(Running(), At(5000), o);
  CHECK(got == want);
  for (const std::string& line : got) CHECK(line.size() <= 30);

  // Names get at most 3/5 of the width (at least 16 columns), so durations stay in view.
  // In Unicode, the cut is marked with one "…" and columns are counted in code points.
  o.unicode = true;
  o.columns = 24;
  Lines unicode = RenderTree(Running(), At(5000), o);
  REQUIRE(unicode.size() == 9);
  CHECK(unicode[5] == "   ├─ ⚠ lint      0.2s …");
  CHECK(unicode[6] == "   └─ ● train (…  4.0s");
}

TEST_CASE("tree view keeps failed and running nodes when the terminal is too short", "[cli]") {
  scheduler::WorkflowState s;
  s.name = "fan";
  s.phase = Phase::kRunning;
  s.started = At(0);
  s.root = "fan";
  Add(s, "fan", "fan", "", NodeType::kDag, Phase::kRunning, 0);
  for (int i = 0; i < 10; ++i) {
    std::string id = "fan.t" + std::to_string(i);
    Add(s, id, "t" + std::to_string(i), "fan", NodeType::kPod, Phase::kSucceeded, i * 100,
        i * 100 + 100);
  }
  Add(s, "fan.bad", "bad", "fan", NodeType::kPod, Phase::kFailed, 2000, 2100, "exit code 3");
  Add(s, "fan.slow", "slow", "fan", NodeType::kPod, Phase::kRunning, 2000);
  TreeViewOptions o = Ascii();
  o.rows = 6;
  Lines want = {
      "fan  Running  3.0s",           "* fan      3.0s", "|- + t0    0.1s",
      "|- x bad   0.1s  exit code 3", "`- * slow  1.0s", "... 9 more succeeded",
  };
  CHECK(RenderTree(s, At(3000), o) == want);

  // Hidden nodes of several phases are counted by phase.
  Add(s, "fan.wait", "wait", "fan", NodeType::kPod, Phase::kPending);
  o.rows = 5;
  Lines short_want = {
      "fan  Running  3.0s",
      "* fan      3.0s",
      "|- x bad   0.1s  exit code 3",
      "`- * slow  1.0s",
      "... 11 more: 1 pending, 10 succeeded",
  };
  CHECK(RenderTree(s, At(3000), o) == short_want);

  // Room for everything: nothing is summarised.
  o.rows = 20;
  CHECK(RenderTree(s, At(3000), o).size() == 15);
}

TEST_CASE("tree view draws the exit handler after the main tree and colours symbols", "[cli]") {
  scheduler::WorkflowState s;
  s.name = "wf";
  s.phase = Phase::kFailed;
  s.message = "child 'main' failed";
  s.started = At(0);
  s.finished = At(2000);
  s.root = "wf";
  s.exit_root = "wf.onExit";
  Add(s, "wf.onExit", "onExit", "", NodeType::kPod, Phase::kSucceeded, 1500, 2000);
  Add(s, "wf", "wf", "", NodeType::kPod, Phase::kFailed, 0, 1500, "exit code 2");
  TreeViewOptions o = Ascii();
  Lines want = {
      "wf  Failed  2.0s  child 'main' failed",
      "x wf      1.5s  exit code 2",
      "+ onExit  0.5s",
  };
  CHECK(RenderTree(s, At(9000), o) == want);

  o.color = true;
  Lines colored = {
      "wf  \x1b[31mFailed\x1b[0m  2.0s  child 'main' failed",
      "\x1b[31mx\x1b[0m wf      1.5s  exit code 2",
      "\x1b[32m+\x1b[0m onExit  0.5s",
  };
  CHECK(RenderTree(s, At(9000), o) == colored);
}

TEST_CASE("tree view orders siblings by start, numbers by value", "[cli]") {
  scheduler::WorkflowState s;
  s.name = "wf";
  s.phase = Phase::kRunning;
  s.started = At(0);
  s.root = "wf";
  Add(s, "wf", "wf", "", NodeType::kDag, Phase::kRunning, 0);
  Add(s, "wf.x(10)", "x(10)", "wf", NodeType::kPod, Phase::kRunning, 5);
  Add(s, "wf.x(2)", "x(2)", "wf", NodeType::kPod, Phase::kRunning, 5);
  Add(s, "wf.a", "a", "wf", NodeType::kPod, Phase::kSucceeded, 0, 10);
  Add(s, "wf.later", "later", "wf", NodeType::kPod, Phase::kPending);
  Lines got = RenderTree(s, At(1000), Ascii());
  REQUIRE(got.size() == 6);
  CHECK(got[2].starts_with("|- + a "));
  CHECK(got[3].starts_with("|- * x(2)"));
  CHECK(got[4].starts_with("|- * x(10)"));
  CHECK(got[5] == "`- . later");
}

TEST_CASE("tree view knows a UTF-8 locale and erases the previous frame", "[cli]") {
  CHECK(LocaleIsUtf8(nullptr, nullptr, "en_US.UTF-8"));
  CHECK(LocaleIsUtf8("", "C.utf8", "C"));
  CHECK_FALSE(LocaleIsUtf8("C", nullptr, "en_US.UTF-8"));  // LC_ALL wins
  CHECK_FALSE(LocaleIsUtf8(nullptr, nullptr, nullptr));
  CHECK(EraseLines(0) == "");
  CHECK(EraseLines(7) == "\r\x1b[7A\x1b[J");
}

}  // namespace
}  // namespace kiln::cli
