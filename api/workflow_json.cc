#include "api/workflow_json.h"

#include <map>

#include "cli/data_dir.h"
#include "dag/parse.h"
#include "executor/kubernetes_job.h"

namespace kiln::api {

namespace {

nlohmann::json ParseStored(const std::string& text) {
  if (text.empty()) return nullptr;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

std::string ValueText(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// {"a": "1"} -> [{"name": "a", "value": "1"}], Argo's parameter lists.
nlohmann::json ParameterList(const nlohmann::json& map) {
  nlohmann::json out = nlohmann::json::array();
  if (!map.is_object()) return out;
  for (auto it = map.begin(); it != map.end(); ++it) out.push_back({{"name", it.key()}, {"value", ValueText(it.value())}});
  return out;
}

nlohmann::json ArtifactJson(const store::ArtifactRecord& a) {
  nlohmann::json j = {{"name", a.name}, {"uri", a.uri}, {"size", a.size}};
  if (!a.sha256.empty()) j["digest"] = "sha256:" + a.sha256;
  return j;
}

}  // namespace

nlohmann::json Rfc3339(int64_t ms) {
  if (ms == 0) return nullptr;
  return cli::FormatTimeUtc(ms);
}

nlohmann::json WorkflowObject(const WorkflowRows& rows, const WorkflowJsonOptions& options) {
  const store::WorkflowRecord& w = rows.workflow;
  nlohmann::json metadata = {{"name", w.name},
                             {"namespace", w.namespace_},
                             {"uid", w.uid},
                             {"creationTimestamp", Rfc3339(w.created_at)}};
  nlohmann::json out = {{"apiVersion", "argoproj.io/v1alpha1"}, {"kind", "Workflow"}};
  nlohmann::json status = {{"phase", w.phase},
                           {"startedAt", Rfc3339(w.started_at)},
                           {"finishedAt", Rfc3339(w.finished_at)}};
  if (!w.message.empty()) status["message"] = w.message;
  nlohmann::json manifest;
  if (options.with_spec) {  // annotations come from the manifest (lists skip the parse)
    auto parsed = dag::YamlToJson(w.name, w.spec);
    if (parsed && parsed->is_object()) manifest = std::move(*parsed);
  }
  if (manifest.is_object()) {
    if (auto m = manifest.find("metadata"); m != manifest.end() && m->is_object()) {
      if (auto l = m->find("labels"); l != m->end() && l->is_object()) metadata["labels"] = *l;
      if (auto a = m->find("annotations"); a != m->end() && a->is_object()) metadata["annotations"] = *a;
    }
    if (options.with_spec) {
      nlohmann::json spec = manifest.value("spec", nlohmann::json::object());
      if (manifest.value("kind", "") == "CronWorkflow" && spec.contains("workflowSpec")) spec = spec["workflowSpec"];
      // Changed after submission: `suspend` (spec.suspend, while the workflow is suspended).
      for (const store::ParameterRecord& p : rows.parameters) {
        if (p.kind == "spec" && p.node_id.empty() && p.name == "suspend") {
          if (p.value == "true") {
            spec["suspend"] = true;
          } else {
            spec.erase("suspend");
          }
        }
      }
      out["spec"] = std::move(spec);
    }
  }
  // The labels as recorded (the manifest's, and those the submission added).
  if (!w.labels.empty()) metadata["labels"] = w.labels;
  out["metadata"] = std::move(metadata);

  // Progress: finished pods / pods, as Argo shows it.
  int pods = 0, pods_done = 0;
  std::map<std::string, std::vector<std::string>> children;
  for (const store::NodeRecord& n : rows.nodes) {
    if (!n.parent_id.empty()) children[n.parent_id].push_back(n.id);
    if (n.type == "Pod") {
      ++pods;
      if (n.phase == "Succeeded" || n.phase == "Failed" || n.phase == "Error" || n.phase == "Omitted" ||
          n.phase == "Skipped") {
        ++pods_done;
      }
    }
  }
  // Lists are rendered without the nodes: no progress rather than a wrong one.
  if (options.with_nodes || !rows.nodes.empty()) {
    status["progress"] = std::to_string(pods_done) + "/" + std::to_string(pods);
  }
  if (options.with_nodes) {
    std::map<std::string, std::vector<const store::ArtifactRecord*>> artifacts;
    for (const store::ArtifactRecord& a : rows.artifacts) artifacts[a.node_id + "\n" + a.direction].push_back(&a);
    nlohmann::json nodes = nlohmann::json::object();
    for (const store::NodeRecord& n : rows.nodes) {
      nlohmann::json j = {{"id", n.id},
                          {"name", n.id},
                          {"displayName", n.display_name},
                          {"type", n.type},
                          {"templateName", n.template_name},
                          {"phase", n.phase},
                          {"startedAt", Rfc3339(n.started_at)},
                          {"finishedAt", Rfc3339(n.finished_at)}};
      if (!n.parent_id.empty()) j["boundaryID"] = n.parent_id;
      if (auto c = children.find(n.id); c != children.end()) j["children"] = c->second;
      if (!n.message.empty()) j["message"] = n.message;
      if (n.attempt > 0) j["retryAttempt"] = n.attempt;
      if (n.type == "Pod" && options.kubernetes) j["podName"] = executor::JobName(w.uid, n.id, n.attempt);
      nlohmann::json inputs = nlohmann::json::object();
      if (nlohmann::json in = ParseStored(n.inputs_json); in.is_object() && !in.empty()) {
        inputs["parameters"] = ParameterList(in);
      }
      if (auto a = artifacts.find(n.id + "\ninput"); a != artifacts.end()) {
        for (const store::ArtifactRecord* r : a->second) inputs["artifacts"].push_back(ArtifactJson(*r));
      }
      if (!inputs.empty()) j["inputs"] = std::move(inputs);
      nlohmann::json outputs = nlohmann::json::object();
      if (nlohmann::json o = ParseStored(n.outputs_json); o.is_object()) {
        if (o.contains("parameters")) outputs["parameters"] = ParameterList(o["parameters"]);
        if (o.contains("result")) outputs["result"] = ValueText(o["result"]);
      }
      if (n.exit_code) outputs["exitCode"] = std::to_string(*n.exit_code);
      if (auto a = artifacts.find(n.id + "\noutput"); a != artifacts.end()) {
        for (const store::ArtifactRecord* r : a->second) outputs["artifacts"].push_back(ArtifactJson(*r));
      }
      if (!outputs.empty()) j["outputs"] = std::move(outputs);
      nodes[n.id] = std::move(j);
    }
    status["nodes"] = std::move(nodes);
    nlohmann::json global = nlohmann::json::array();
    for (const store::ParameterRecord& p : rows.parameters) {
      if (p.kind == "global") global.push_back({{"name", p.name}, {"value", p.value}});
    }
    nlohmann::json outputs = nlohmann::json::object();
    if (!global.empty()) outputs["parameters"] = std::move(global);
    if (auto a = artifacts.find("\noutput"); a != artifacts.end()) {
      for (const store::ArtifactRecord* r : a->second) outputs["artifacts"].push_back(ArtifactJson(*r));
    }
    if (!outputs.empty()) status["outputs"] = std::move(outputs);
  }
  out["status"] = std::move(status);
  return out;
}

}  // namespace kiln::api
