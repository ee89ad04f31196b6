// The controller's state, events, actions and transitions: plain values.
// Thread-safety: values; a WorkflowState is owned by one strand at a time.
#ifndef KILN_SCHEDULER_STATE_H_
#define KILN_SCHEDULER_STATE_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "dag/spec.h"

namespace kiln::scheduler {

using Time = std::chrono::system_clock::time_point;
using Duration = std::chrono::milliseconds;

// Argo's node phases.
enum class Phase { kPending, kRunning, kSucceeded, kFailed, kError, kSkipped, kOmitted };
std::string_view PhaseName(Phase phase);
bool IsDone(Phase phase);  // Succeeded, Failed, Error, Skipped, Omitted

// Argo's node types.
enum class NodeType { kPod, kSteps, kStepGroup, kDag, kTaskGroup, kRetry, kSuspend, kSkipped };
std::string_view NodeTypeName(NodeType type);

// An artifact in the local repository: content-addressed by its sha256.
struct ArtifactRef {
  std::string sha256;      // hex of the stored bytes (the tar.gz for a directory)
  std::string location;    // where the bytes are (a path in the repository)
  int64_t size = 0;
  bool archived = false;   // a directory stored as tar.gz (Argo's default archive)
  std::string raw;         // inline content (raw artifacts); location empty then
  bool raw_given = false;
  // A key-only artifact's key in the default artifact repository (rendered). An output keeps
  // its sha256 too; an input to fetch by key has no sha256, and `archived` then says whether a
  // tar.gz found there is unpacked (false: `archive: {none: {}}`).
  std::string key;

  nlohmann::json ToJson() const;
  static std::optional<ArtifactRef> FromJson(std::string_view text);
  bool operator==(const ArtifactRef&) const = default;
};

// An input artifact a step needs placed at `path` before it runs.
struct InputArtifact {
  std::string name;
  std::string path;
  ArtifactRef ref;
  bool operator==(const InputArtifact&) const = default;
};

struct NodeState {
  std::string id;            // stable and unique: "wf", "wf.train", "wf.train(0:0.01)", "wf[1].s"
  std::string name;          // the invocation's name ("train", "train(0:0.01)"), root: workflow name
  std::string parent;        // "" for the root
  NodeType type = NodeType::kPod;
  std::string template_name;
  const dag::Template* tmpl = nullptr;
  // The spec `tmpl` belongs to: a `template:` name inside it resolves there first (a template of
  // a WorkflowTemplate reached through templateRef calls that WorkflowTemplate's templates).
  const dag::WorkflowSpec* scope = nullptr;
  Phase phase = Phase::kPending;
  std::string message;
  Time started{};
  Time finished{};
  int attempt = 0;                      // for a retry child: its attempt number
  std::optional<int> exit_code;
  std::map<std::string, std::string> inputs;   // resolved input parameters
  std::map<std::string, std::string> outputs;  // output parameters
  std::optional<std::string> result;           // outputs.result (stdout, bounded)
  std::map<std::string, ArtifactRef> output_artifacts;
  std::vector<InputArtifact> input_artifacts;
  std::string item;          // the loop item (rendered) for fan-out children; "" otherwise
  bool has_item = false;
  int group = -1;            // steps: the group index of a StepGroup node
  // Created but waiting for a parallelism limit (Pending); started by a later event.
  bool deferred = false;
  // Set when kiln kills the step (a deadline passed, a cancel): the message it ends with.
  std::string kill_message;
  // A lifecycle hook's node ("<node>.onExit", "<node>.hooks.<name>", "<wf>.hooks.<name>"): its
  // parent waits for it, but its failure does not fail the parent.
  bool hook = false;
};

// How many of a node's children are done, and how many of those ended Failed or Error.
struct ChildTally {
  int64_t done = 0;
  int64_t failed = 0;
  bool operator==(const ChildTally&) const = default;
};

// What the controller derives once from the manifest's templates (per dag template: tasks by
// name, who waits for whom, parsed `depends`); defined in controller.cc.
struct TemplateIndexCache;

struct WorkflowState {
  std::string uid;
  std::string name;
  std::string namespace_;
  const dag::Manifest* manifest = nullptr;
  std::map<std::string, std::string> parameters;  // workflow.parameters.*
  Phase phase = Phase::kPending;
  std::string message;
  Time started{};
  Time finished{};
  std::unordered_map<std::string, NodeState> nodes;
  std::string entrypoint;    // the template to start with (spec.entrypoint or an override)
  std::string root;          // id of the entrypoint node
  std::string exit_root;     // id of the onExit handler's node, once started
  // How the main graph ended, once it has and the exit handler runs: {{workflow.status}}.
  std::optional<Phase> main_phase;
  std::string main_message;
  bool cancel_requested = false;
  bool cancel_runs_exit_handler = false;  // the cancel was a stop: the exit handler runs
  bool exit_handler_cancelled = false;    // a cancel arrived while the exit handler ran
  // Timers started and not yet fired, by name: re-armed when a run is resumed.
  std::map<std::string, Time> timers;
  // Global outputs (outputs with a globalName): {{workflow.outputs.parameters.NAME}} and
  // {{workflow.outputs.artifacts.NAME}}.
  std::map<std::string, std::string> global_parameters;
  std::map<std::string, ArtifactRef> global_artifacts;
  // Nodes waiting for a parallelism limit or for the workflow's suspension to end, in the order
  // they wait (first in, first started).
  std::vector<std::string> deferred;
  // Argo's spec.suspend (SuspendRequested until ResumeRequested): no step starts meanwhile.
  bool suspended = false;

  // Derived by Apply from the nodes (never recorded; a replay rebuilds them), so that no event
  // costs time in proportion to the size of the workflow:
  //   children: each node's children, in creation order;
  //   tallies:  per node, how many of its children are done and failed.
  std::unordered_map<std::string, std::vector<std::string>> children;
  std::unordered_map<std::string, ChildTally> tallies;
  // Built lazily by Decide; shared by copies of the state (they share the manifest).
  std::shared_ptr<TemplateIndexCache> index;

  // The node's children in creation order (empty when it has none).
  const std::vector<std::string>& ChildrenOf(const std::string& id) const;
};

// ---- events: what happened -------------------------------------------------------------
struct StartWorkflow {};
struct StepStarted {
  std::string node;
};
// A launched step still waits to run, and the executor says why (e.g. the Kubernetes scheduler's
// "0/5 nodes are available: ..."): the message of the Pending node; empty clears it. Ignored
// once the node runs or has ended.
struct StepWaiting {
  std::string node;
  std::string message;
};
// How a leaf step ended, as the executor saw it.
struct StepFinished {
  std::string node;
  int exit_code = 0;
  bool error = false;                          // could not run (executable missing, ...): Error
  std::string message;
  std::map<std::string, std::string> outputs;  // output parameters read after the step
  std::optional<std::string> result;           // stdout
  std::map<std::string, ArtifactRef> artifacts;  // output artifacts collected after the step
};
struct TimerFired {
  std::string timer;  // "retry:<node>", "suspend:<node>", ...
};
struct CancelRequested {
  std::string message = "terminated by user";
  // Argo's `stop` (and a workflow deadline): the exit handler still runs. Otherwise `terminate`.
  bool run_exit_handler = false;
};
// The run continues in a new process (after a crash or kill): steps decided but not started are
// launched again, pending timers are re-armed, and steps that were running are lost (Error,
// then retried per their retryStrategy) unless `adopt_running`: the executor's steps outlive
// kiln (Kubernetes Jobs), so a running step is launched again with the same attempt and the
// executor adopts what still runs or has ended (or runs it anew when it vanished).
struct Resume {
  bool adopt_running = false;
};
// Argo's `suspend` (spec.suspend: true): steps that would start wait, Pending, until
// ResumeRequested; running steps go on and their results are recorded; deadlines still count.
// A stop or terminate ends the suspension's hold (the exit handler of a stop runs).
struct SuspendRequested {};
// Argo's `resume`: the workflow's suspension ends (what waited starts) and suspend nodes waiting
// for a resume succeed.
struct ResumeRequested {};
// Argo's `retry` of a Failed or Error workflow, in place: nodes that ended Failed, Error or
// Omitted (below no Succeeded node), what depends on them (later step groups, dag dependents),
// their hooks and the exit handler are removed and run again; their ancestors run again
// (Running); Succeeded nodes keep their results unless `restart_successful` and
// `node_field_selector` matches them (scheduler/node_selector.h; empty: every node). The
// workflow is Running again, its message and finish time cleared, its deadline counted anew.
// Ignored unless the workflow is Failed or Error.
struct RetryRequested {
  bool restart_successful = false;
  std::string node_field_selector;
  std::map<std::string, std::string> parameters;  // workflow parameters to override
};
using Event = std::variant<StartWorkflow, StepStarted, StepFinished, TimerFired, CancelRequested, Resume,
                           SuspendRequested, ResumeRequested, RetryRequested, StepWaiting>;

// Events as JSON, so a run can be recorded and replayed (see Replay in controller.h).
nlohmann::json EventToJson(const Event& event);
std::optional<Event> EventFromJson(const nlohmann::json& j);

// ---- actions: what the driver must do -----------------------------------------------------
// Runs one leaf step. Strings are already substituted ({{...}} resolved).
struct LaunchStep {
  std::string node;
  const dag::Template* tmpl = nullptr;
  int attempt = 0;          // the node's attempt number (NodeState::attempt)
  dag::Json container;      // the container (or script's container) with tags resolved
  std::string script_source;
  // The strategic merge patches for the step's pod spec, in the order they apply: the
  // workflow's spec.podSpecPatch, then the template's podSpecPatch (YAML or JSON text).
  std::vector<std::string> pod_spec_patches;
  std::map<std::string, std::string> inputs;
  std::vector<InputArtifact> input_artifacts;
  // The Kubernetes Volume objects the step's volumeMounts may name: the workflow's
  // spec.volumes, the template's volumes, and one {name, persistentVolumeClaim: {claimName}}
  // per spec.volumeClaimTemplates entry, marked "kiln.dev/per-workflow": true.
  dag::Json volumes = dag::Json::array();
  // A resource template's fields, rendered (the executor acts on the API; dag::ResourceSpec).
  struct Resource {
    std::string action;  // get | create | apply | delete | replace | patch
    std::string manifest;
    std::vector<std::string> flags;
    std::string success_condition;
    std::string failure_condition;
    std::string merge_strategy;  // patch: strategic (the default) | merge | json
    bool set_owner_reference = false;
    // Output parameters read from the object: name -> valueFrom.jsonPath (rendered); those
    // with a jqFilter instead are listed in jq_filters.
    std::vector<std::pair<std::string, std::string>> json_paths;
    std::vector<std::string> jq_filters;
  };
  std::optional<Resource> resource;
  // Key-only output artifacts: the rendered key each is also stored under, by artifact name.
  std::map<std::string, std::string> output_artifact_keys;

  bool operator==(const LaunchStep& o) const { return node == o.node && container == o.container; }
};
struct KillStep {
  std::string node;
  bool operator==(const KillStep&) const = default;
};
struct StartTimer {
  std::string timer;
  Time at;
  bool operator==(const StartTimer&) const = default;
};
using Action = std::variant<LaunchStep, KillStep, StartTimer>;

// A change to the state, computed by Decide and applied by Apply (the one place state changes):
// every node that was created or changed, with its new value, and the workflow's own fields.
struct Transition {
  std::vector<NodeState> nodes;          // new values of created or changed nodes
  std::vector<std::string> created;      // ids of the nodes created, in creation order
  std::optional<Phase> workflow_phase;   // when the workflow's phase changes
  std::string workflow_message;
  std::optional<std::string> root;       // set when the entrypoint node is created
  std::optional<std::string> exit_root;  // set when the exit handler's node is created
  std::optional<Phase> main_phase;       // set when the main graph ends and the handler starts
  std::string main_message;
  bool cancel_requested = false;
  bool cancel_runs_exit_handler = false;
  bool exit_handler_cancelled = false;
  std::vector<std::string> timers_fired;  // names to forget from WorkflowState::timers
  std::map<std::string, std::string> global_parameters;  // set or replaced
  std::map<std::string, ArtifactRef> global_artifacts;
  std::optional<std::vector<std::string>> deferred;  // the new list when it changed
  std::optional<bool> suspended;                     // when the workflow's suspension changes
  // A retry (RetryRequested): `removed` nodes are dropped (with their place among their parent's
  // children) before `nodes` are applied, so a removed id may be created again; the exit
  // handler, main phase, cancel flags, message and finish time are cleared; `parameters`, when
  // set, replace the workflow's parameters.
  bool retried = false;
  std::vector<std::string> removed;
  std::optional<std::map<std::string, std::string>> parameters;
  Time now{};
  std::vector<Action> actions;
};

}  // namespace kiln::scheduler

#endif  // KILN_SCHEDULER_STATE_H_
