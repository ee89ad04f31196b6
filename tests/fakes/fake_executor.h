// FakeExecutor: plays the executor's side of the scheduler's contract in tests. It drives the
// pure core (Decide + Apply) the way the real driver does, with a fake clock, and records
// every action, so tests assert exact action lists and react to launches with scripted results.
#ifndef KILN_TESTS_FAKES_FAKE_EXECUTOR_H_
#define KILN_TESTS_FAKES_FAKE_EXECUTOR_H_

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "dag/parse.h"
#include "dag/validate.h"
#include "scheduler/controller.h"

namespace kiln::testing {

class FakeExecutor {
 public:
  // Parses `yaml` (one Workflow, optionally after WorkflowTemplates) and starts it.
  explicit FakeExecutor(const std::string& yaml, std::map<std::string, std::string> params = {}) {
    dag::Diagnostics diags;
    manifests_ = dag::ParseManifests("wf.yaml", yaml, dag::ParseOptions{}, diags);
    for (const dag::Diagnostic& d : diags.items()) INFO(d.ToString());
    REQUIRE_FALSE(diags.has_errors());
    for (const dag::Manifest& m : manifests_) library_.Add(m);
    params_ = std::move(params);
    auto state = scheduler::NewWorkflow(manifests_.back(), library_, "uid-1", params_);
    REQUIRE(state.has_value());
    state_ = std::move(*state);
  }

  // As a restarted `kiln run` does: a fresh state rebuilt by replaying every event delivered so
  // far (the crashed process's state is dropped). The caller then sends Resume.
  void Restart() {
    auto state = scheduler::NewWorkflow(manifests_.back(), library_, "uid-1", params_);
    REQUIRE(state.has_value());
    scheduler::Replay(*state, library_, recorded_);
    state_ = std::move(*state);
  }

  // Delivers an event at the fake clock's time; returns the actions it produced.
  std::vector<scheduler::Action> Send(const scheduler::Event& event) {
    scheduler::Transition t = scheduler::Decide(state_, library_, event, now_);
    // Decide is pure: the same inputs give the same transition.
    scheduler::Transition again = scheduler::Decide(state_, library_, event, now_);
    CHECK(again.actions.size() == t.actions.size());
    CHECK(again.nodes.size() == t.nodes.size());
    scheduler::Apply(state_, t);
    // Recorded as the driver records it, through its JSON form.
    auto decoded = scheduler::EventFromJson(scheduler::EventToJson(event));
    REQUIRE(decoded.has_value());
    recorded_.push_back({std::move(*decoded), now_});
    for (const auto& a : t.actions) {
      if (const auto* l = std::get_if<scheduler::LaunchStep>(&a)) launched_.push_back(l->node);
    }
    return t.actions;
  }

  std::vector<scheduler::Action> Start() { return Send(scheduler::StartWorkflow{}); }

  // Recorded events (each as it was decided), for replay.
  const std::vector<scheduler::RecordedEvent>& recorded() const { return recorded_; }

  // The step started and ended with `exit_code` (and outputs / stdout).
  std::vector<scheduler::Action> Finish(const std::string& node, int exit_code = 0,
                                        std::map<std::string, std::string> outputs = {},
                                        std::optional<std::string> result = std::nullopt) {
    Send(scheduler::StepStarted{node});
    scheduler::StepFinished f;
    f.node = node;
    f.exit_code = exit_code;
    f.outputs = std::move(outputs);
    f.result = std::move(result);
    return Send(f);
  }

  void Advance(std::chrono::milliseconds d) { now_ += d; }

  const scheduler::WorkflowState& state() const { return state_; }
  const dag::TemplateLibrary& library() const { return library_; }
  const scheduler::NodeState& node(const std::string& id) const {
    auto it = state_.nodes.find(id);
    INFO("node " << id);
    REQUIRE(it != state_.nodes.end());
    return it->second;
  }
  scheduler::Phase phase(const std::string& id) const { return node(id).phase; }
  const std::vector<std::string>& launched() const { return launched_; }
  scheduler::Time now() const { return now_; }

 private:
  std::vector<dag::Manifest> manifests_;
  dag::TemplateLibrary library_;
  std::map<std::string, std::string> params_;
  std::vector<scheduler::RecordedEvent> recorded_;
  scheduler::WorkflowState state_;
  scheduler::Time now_ = scheduler::Time{} + std::chrono::hours(24 * 365 * 56);  // a fixed instant
  std::vector<std::string> launched_;
};

// The node ids of the LaunchStep actions in `actions`, in order.
inline std::vector<std::string> Launches(const std::vector<scheduler::Action>& actions) {
  std::vector<std::string> out;
  for (const auto& a : actions) {
    if (const auto* l = std::get_if<scheduler::LaunchStep>(&a)) out.push_back(l->node);
  }
  return out;
}

// The nodes `actions` kill, in order.
inline std::vector<std::string> Kills(const std::vector<scheduler::Action>& actions) {
  std::vector<std::string> out;
  for (const auto& a : actions) {
    if (const auto* k = std::get_if<scheduler::KillStep>(&a)) out.push_back(k->node);
  }
  return out;
}

// The timers `actions` start, in order.
inline std::vector<scheduler::StartTimer> Timers(const std::vector<scheduler::Action>& actions) {
  std::vector<scheduler::StartTimer> out;
  for (const auto& a : actions) {
    if (const auto* t = std::get_if<scheduler::StartTimer>(&a)) out.push_back(*t);
  }
  return out;
}

// A Workflow named "wf" whose spec is `body` (lines indented by two spaces).
inline std::string Wf(const std::string& body) {
  return "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n" + body;
}

}  // namespace kiln::testing

#endif  // KILN_TESTS_FAKES_FAKE_EXECUTOR_H_
