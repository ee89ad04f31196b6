// The Argo Server JSON of a recorded workflow (docs/api.md "The Workflow object"), built from
// the store's rows, and YAML manifest text as JSON.
// Thread-safety: pure functions.
#ifndef KILN_API_WORKFLOW_JSON_H_
#define KILN_API_WORKFLOW_JSON_H_

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "store/records.h"

namespace kiln::api {

// The rows of one workflow, as read from the store.
struct WorkflowRows {
  store::WorkflowRecord workflow;
  std::vector<store::NodeRecord> nodes;
  std::vector<store::ParameterRecord> parameters;
  std::vector<store::ArtifactRecord> artifacts;
};

struct WorkflowJsonOptions {
  bool with_spec = true;   // spec (the manifest's, parsed from the recorded text)
  bool with_nodes = true;  // status.nodes; lists leave them out
  // Pod nodes get "podName": the Job that ran their last attempt (executor/kubernetes_job.h).
  bool kubernetes = false;
};

// {"metadata": ..., "spec": ..., "status": ...} as Argo Server returns a Workflow.
nlohmann::json WorkflowObject(const WorkflowRows& rows, const WorkflowJsonOptions& options);

// "2026-11-24T08:00:00.123Z"; null for 0.
nlohmann::json Rfc3339(int64_t ms);

}  // namespace kiln::api

#endif  // KILN_API_WORKFLOW_JSON_H_
