// The one mapping from the controller's transitions to store rows (see recording.h).
#include "api/recording.h"

#include <chrono>
#include <nlohmann/json.hpp>

namespace kiln::api {

using scheduler::NodeState;
using scheduler::Phase;

namespace {

std::string Json(const std::map<std::string, std::string>& m) {
  if (m.empty()) return "";
  return nlohmann::json(m).dump();
}

}  // namespace

int64_t Ms(scheduler::Time t) {
  if (t == scheduler::Time{}) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

store::NodeRecord NodeRecordOf(const std::string& uid, const NodeState& n) {
  store::NodeRecord r;
  r.workflow_uid = uid;
  r.id = n.id;
  r.parent_id = n.parent;
  r.display_name = n.name;
  r.template_name = n.template_name;
  r.type = std::string(scheduler::NodeTypeName(n.type));
  r.phase = std::string(scheduler::PhaseName(n.phase));
  r.attempt = n.attempt;
  r.started_at = Ms(n.started);
  r.finished_at = Ms(n.finished);
  r.exit_code = n.exit_code;
  r.message = n.message;
  r.inputs_json = Json(n.inputs);
  nlohmann::json out = nlohmann::json::object();
  if (!n.outputs.empty()) out["parameters"] = n.outputs;
  if (n.result) out["result"] = *n.result;
  if (n.exit_code) out["exitCode"] = *n.exit_code;
  r.outputs_json = out.empty() ? "" : out.dump();
  return r;
}

store::WorkflowRecord WorkflowRecordOf(const scheduler::WorkflowState& s, const RunIdentity& run) {
  store::WorkflowRecord w;
  w.uid = s.uid;
  w.name = s.name;
  w.namespace_ = s.namespace_;
  w.spec = run.spec;
  w.parameters_json = Json(s.parameters);
  w.phase = std::string(scheduler::PhaseName(s.phase));
  w.message = s.message;
  w.created_at = run.created;
  w.labels = run.labels;
  w.started_at = Ms(s.started);
  w.finished_at = Ms(s.finished);
  return w;
}

store::EventRecord EventRow(const std::string& uid, int64_t at, std::string kind) {
  store::EventRecord e;
  e.workflow_uid = uid;
  e.at = at;
  e.kind = std::move(kind);
  return e;
}

store::Batch TransitionBatch(const scheduler::WorkflowState& before, const scheduler::Event& event,
                             const scheduler::Transition& t, const RunIdentity& run) {
  const std::string& uid = before.uid;
  store::Batch b;
  // The event itself first: replaying these rebuilds the state (kiln resume).
  store::EventRecord input = EventRow(uid, Ms(t.now), "Input");
  input.data_json = scheduler::EventToJson(event).dump();
  b.events.push_back(std::move(input));
  // A retry's removed nodes; those it creates again are written back below.
  for (const std::string& id : t.removed) b.node_deletes.push_back({uid, id});
  if (t.suspended) b.parameter_upserts.push_back({uid, "", "suspend", *t.suspended ? "true" : "false", "spec"});
  for (const NodeState& n : t.nodes) {
    b.node_upserts.push_back(NodeRecordOf(uid, n));
    auto it = before.nodes.find(n.id);
    Phase from = it == before.nodes.end() ? Phase::kPending : it->second.phase;
    if (it == before.nodes.end() || from != n.phase) {
      store::EventRecord e = EventRow(uid, Ms(t.now), "NodePhase");
      e.node_id = n.id;
      e.from_phase = it == before.nodes.end() ? "" : std::string(scheduler::PhaseName(from));
      e.to_phase = std::string(scheduler::PhaseName(n.phase));
      e.message = n.message;
      b.events.push_back(std::move(e));
    }
    for (const auto& [k, v] : n.outputs) b.parameter_upserts.push_back({uid, n.id, k, v, "output"});
    bool newly_done = scheduler::IsDone(n.phase) && (it == before.nodes.end() || !scheduler::IsDone(from));
    if (newly_done && n.type == scheduler::NodeType::kPod) {
      for (const auto& [k, a] : n.output_artifacts) {
        b.artifact_inserts.push_back({uid, n.id, k, "output", "file://" + a.location, a.sha256, a.size});
      }
      for (const scheduler::InputArtifact& a : n.input_artifacts) {
        if (a.ref.raw_given) continue;
        b.artifact_inserts.push_back({uid, n.id, a.name, "input", a.ref.location.empty() ? "key:" + a.ref.key : "file://" + a.ref.location, a.ref.sha256, a.ref.size});
      }
    }
  }
  for (const auto& [k, v] : t.global_parameters) b.parameter_upserts.push_back({uid, "", k, v, "global"});
  for (const auto& [k, a] : t.global_artifacts) {
    if (!a.raw_given) b.artifact_inserts.push_back({uid, "", k, "output", "file://" + a.location, a.sha256, a.size});
  }
  for (const scheduler::Action& a : t.actions) {
    store::EventRecord e = EventRow(uid, Ms(t.now), "");
    if (const auto* l = std::get_if<scheduler::LaunchStep>(&a)) {
      e.kind = "Launch";
      e.node_id = l->node;
      e.data_json = l->container.dump();
    } else if (const auto* k = std::get_if<scheduler::KillStep>(&a)) {
      e.kind = "Kill";
      e.node_id = k->node;
    } else if (const auto* tm = std::get_if<scheduler::StartTimer>(&a)) {
      e.kind = "Timer";
      e.message = tm->timer;
    }
    b.events.push_back(std::move(e));
  }
  if ((t.workflow_phase && *t.workflow_phase != before.phase) || t.retried) {
    scheduler::WorkflowState after;  // the workflow's own fields only
    after.uid = before.uid;
    after.name = before.name;
    after.namespace_ = before.namespace_;
    after.parameters = before.parameters;
    after.phase = before.phase;
    after.message = before.message;
    after.started = before.started;
    after.finished = before.finished;
    scheduler::Transition own;
    own.workflow_phase = t.workflow_phase;
    own.workflow_message = t.workflow_message;
    own.retried = t.retried;
    own.parameters = t.parameters;
    own.now = t.now;
    scheduler::Apply(after, own);
    b.workflow_upsert = WorkflowRecordOf(after, run);
    store::EventRecord e = EventRow(uid, Ms(t.now), "WorkflowPhase");
    e.from_phase = std::string(scheduler::PhaseName(before.phase));
    e.to_phase = std::string(scheduler::PhaseName(t.workflow_phase.value_or(before.phase)));
    e.message = t.workflow_message;
    b.events.push_back(std::move(e));
  }
  return b;
}

}  // namespace kiln::api
