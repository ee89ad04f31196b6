// The controller's decisions: a pure function from (state, event, time) to a Transition, and the
// one function that applies a Transition to a state. No I/O, no clocks, no randomness: the
// driver persists each Transition before performing its actions, then applies it.
//
//   Transition t = Decide(state, event, now);   // what changes, what to do
//   store.Record(t);                            // durable first
//   Apply(state, t);                            // the only place state changes
//   for (const Action& a : t.actions) driver.Perform(a);
//
// Thread-safety: both functions are reentrant; a state must not be shared during Apply.
#ifndef KILN_SCHEDULER_CONTROLLER_H_
#define KILN_SCHEDULER_CONTROLLER_H_

#include "base/error.h"
#include "dag/validate.h"
#include "scheduler/state.h"

namespace kiln::scheduler {

// Creates the state of a new run of `manifest` (which must outlive it). `parameters` override
// spec.arguments (the -p flags); `entrypoint` overrides spec.entrypoint when not empty.
// Errors: an unknown entrypoint, a workflow parameter without a value.
Result<WorkflowState> NewWorkflow(const dag::Manifest& manifest, const dag::TemplateLibrary& library,
                                  std::string uid, std::map<std::string, std::string> parameters,
                                  std::string entrypoint = {});

// Decides what `event` changes in `state` at time `now`. Pure: the same inputs give the same
// Transition. `library` resolves templateRefs; it and the manifest must outlive the state.
Transition Decide(const WorkflowState& state, const dag::TemplateLibrary& library, const Event& event,
                  Time now);

// Applies `transition` to `state`.
void Apply(WorkflowState& state, const Transition& transition);

// An event as it was decided: what happened and when.
struct RecordedEvent {
  Event event;
  Time at;
};

// Rebuilds a run's state from its recorded events: `state` (fresh from NewWorkflow, with the
// recorded uid, name and parameters) is brought forward by deciding and applying each event at
// its recorded time; actions are not performed. Because Decide is pure, this is the state the
// crashed process had after its last recorded transition.
void Replay(WorkflowState& state, const dag::TemplateLibrary& library, const std::vector<RecordedEvent>& events);

}  // namespace kiln::scheduler

#endif  // KILN_SCHEDULER_CONTROLLER_H_
