// The rows kiln keeps about workflows: plain values, one struct per table (see docs/store.md).
// Times are milliseconds since the Unix epoch; 0 means "not yet". Phases and kinds are the
// strings Argo uses ("Running", "Pod", ...), stored as given: the store does not interpret them.
// Thread-safety: plain values, safe to copy between threads.
#ifndef KILN_STORE_RECORDS_H_
#define KILN_STORE_RECORDS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace kiln::store {

// One submitted workflow. Key: uid. (namespace_, name) is unique too.
struct WorkflowRecord {
  std::string uid;
  std::string name;
  std::string namespace_;
  std::string kind = "Workflow";
  std::string spec;             // the manifest text (YAML) as submitted, after defaults
  std::string parameters_json;  // workflow arguments as a JSON document; "" when none
  std::string phase;            // Pending, Running, Succeeded, Failed, Error
  std::string message;
  int64_t created_at = 0;
  int64_t started_at = 0;
  int64_t finished_at = 0;
  // Kubernetes-style labels (metadata.labels), matched by WorkflowFilter::label_selector. An
  // upsert of the workflow replaces its whole label set with this one. Keys are not empty;
  // keys and values are UTF-8 without NUL bytes.
  std::map<std::string, std::string> labels;

  bool operator==(const WorkflowRecord&) const = default;
};

// One node of a workflow's graph. Key: (workflow_uid, id).
struct NodeRecord {
  std::string workflow_uid;
  std::string id;         // stable across restarts, e.g. "wf-abc.train(0)"
  std::string parent_id;  // "" for the root
  std::string display_name;
  std::string template_name;
  std::string type;   // Pod, DAG, Steps, StepGroup, Retry, Skipped, Suspend, TaskGroup, ...
  std::string phase;  // Pending, Running, Succeeded, Failed, Error, Skipped, Omitted
  int attempt = 0;
  int64_t started_at = 0;
  int64_t finished_at = 0;
  std::optional<int> exit_code;  // set once a Pod node's process has exited
  std::string message;
  std::string inputs_json;   // resolved inputs (parameters and artifacts) as JSON; "" when none
  std::string outputs_json;  // outputs as JSON; "" when none

  bool operator==(const NodeRecord&) const = default;
};

// A parameter value. Key: (workflow_uid, node_id, kind, name).
struct ParameterRecord {
  std::string workflow_uid;
  std::string node_id;  // "" for a workflow-level parameter
  std::string name;
  std::string value;
  // "input", "output", "global", or "spec": a workflow spec field changed after submission
  // (node_id "", e.g. name "suspend", value "true" while `kiln suspend` holds the workflow).
  std::string kind;

  bool operator==(const ParameterRecord&) const = default;
};

// An artifact a node consumed or produced. Key: (workflow_uid, node_id, direction, name).
struct ArtifactRecord {
  std::string workflow_uid;
  std::string node_id;  // the producing (direction "output") or consuming node; "" for workflow
  std::string name;
  std::string direction;  // "input" or "output"
  std::string uri;
  std::string sha256;  // lowercase hex; "" when not computed
  int64_t size = 0;    // bytes

  bool operator==(const ArtifactRecord&) const = default;
};

// One entry of the append-only event log: a transition the controller decided.
struct EventRecord {
  int64_t seq = 0;  // assigned by the store when appended; ignored on input
  std::string workflow_uid;
  std::string node_id;  // "" for a workflow-level event
  int64_t at = 0;
  std::string kind;  // NodePhase, WorkflowPhase, Launch, Kill, Timer, ...
  std::string from_phase;
  std::string to_phase;
  std::string message;
  std::string data_json;  // anything else the kind needs, as JSON; "" when none

  bool operator==(const EventRecord&) const = default;
};

// A WorkflowTemplate or ClusterWorkflowTemplate, as submitted. Key: (kind, namespace_, name).
struct TemplateRecord {
  std::string namespace_;  // "" for a ClusterWorkflowTemplate; not "" for a WorkflowTemplate
  std::string name;
  std::string kind;  // "WorkflowTemplate" or "ClusterWorkflowTemplate" (kWorkflowTemplate, ...)
  std::string spec;  // the manifest text
  std::string uid;   // stored as given
  int64_t created_at = 0;  // kept from the stored row when PutTemplate replaces one
  int64_t updated_at = 0;
  std::map<std::string, std::string> labels;  // as WorkflowRecord::labels

  bool operator==(const TemplateRecord&) const = default;
};

inline constexpr std::string_view kWorkflowTemplate = "WorkflowTemplate";
inline constexpr std::string_view kClusterWorkflowTemplate = "ClusterWorkflowTemplate";

}  // namespace kiln::store

#endif  // KILN_STORE_RECORDS_H_
