// How a run's transitions become store rows: the one mapping from the controller's state
// (scheduler/state.h) to the store's records (store/records.h), shared by `kiln run` and
// `kiln server` so that both record a workflow the same way and either can resume it.
// Thread-safety: pure functions.
#ifndef KILN_API_RECORDING_H_
#define KILN_API_RECORDING_H_

#include <cstdint>
#include <map>
#include <string>

#include "scheduler/controller.h"
#include "store/store.h"

namespace kiln::api {

// What the workflow row carries besides the state: the manifest text as submitted, when it was
// created (ms since the epoch) and its labels.
struct RunIdentity {
  std::string spec;
  int64_t created = 0;
  std::map<std::string, std::string> labels;
};

// Milliseconds since the epoch; 0 for the zero time.
int64_t Ms(scheduler::Time t);

store::NodeRecord NodeRecordOf(const std::string& uid, const scheduler::NodeState& n);
store::WorkflowRecord WorkflowRecordOf(const scheduler::WorkflowState& s, const RunIdentity& run);
store::EventRecord EventRow(const std::string& uid, int64_t at, std::string kind);

// Everything transition `t`, decided from `event` on state `before`, changes, as one batch:
// the event itself ("Input", what a replay reads back), changed nodes and their phase events,
// output parameters, artifacts of steps that just finished, global outputs, the actions
// (Launch/Kill/Timer), a retry's removed nodes (deleted, before the nodes it writes), the
// workflow's suspension (a "spec" parameter "suspend": "true"/"false") and, when the workflow's
// phase changed or it was retried, its row and a WorkflowPhase event.
store::Batch TransitionBatch(const scheduler::WorkflowState& before, const scheduler::Event& event,
                             const scheduler::Transition& t, const RunIdentity& run);

}  // namespace kiln::api

#endif  // KILN_API_RECORDING_H_
