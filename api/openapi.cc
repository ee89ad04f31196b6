// The OpenAPI 3 document of the REST API (docs/api.md), served at /api/v1/openapi.json.
// tests/api/api_server_test.cc checks that every operation it lists is routed by the server.
#include <nlohmann/json.hpp>

#include <string>

#include "api/api_server.h"

namespace kiln::api {

namespace {

using Json = nlohmann::json;

Json Ref(const std::string& name) { return {{"$ref", "#/components/schemas/" + name}}; }

Json Content(const Json& schema) { return {{"application/json", {{"schema", schema}}}}; }

Json Param(const std::string& name, const std::string& in, const std::string& description) {
  return {{"name", name}, {"in", in}, {"required", in == "path"}, {"description", description}, {"schema", {{"type", "string"}}}};
}

struct Op {
  std::string method;
  std::string path;
  std::string summary;
  Json body;      // request body schema, or null
  Json response;  // 200 response schema
  Json query;     // extra query parameters
};

Json Build() {
  const Json ns = Param("ns", "path", "The namespace");
  const Json name = Param("name", "path", "The workflow's name");
  Json errors = {{"400", {{"description", "Invalid request or manifest; details list each problem"}, {"content", Content(Ref("Error"))}}},
                 {"401", {{"description", "No or wrong bearer token"}, {"content", Content(Ref("Error"))}}},
                 {"403", {{"description", "The token's namespaces or role do not allow it"}, {"content", Content(Ref("Error"))}}},
                 {"404", {{"description", "Not found"}, {"content", Content(Ref("Error"))}}},
                 {"409", {{"description", "Already exists, or not in a state that allows it"}, {"content", Content(Ref("Error"))}}},
                 {"413", {{"description", "Body too large"}}}};
  const Json wf_body = {{"type", "object"}, {"properties", {{"workflow", Ref("Workflow")}, {"serverDryRun", {{"type", "boolean"}}}}}};
  const Json tmpl_body = {{"type", "object"}, {"properties", {{"template", {{"type", "object"}}}}}};
  const Json list = {{"type", "object"},
                     {"properties", {{"metadata", {{"type", "object"}, {"properties", {{"continue", {{"type", "string"}}}}}}},
                                     {"items", {{"type", "array"}, {"items", Ref("Workflow")}}}}}};
  const Json tlist = {{"type", "object"}, {"properties", {{"items", {{"type", "array"}, {"items", {{"type", "object"}}}}}}}};
  const Json empty = {{"type", "object"}};
  std::vector<Op> ops = {
      {"post", "/api/v1/workflows/{ns}", "Submit a workflow ({workflow} as JSON, or the manifest as application/yaml)", wf_body, Ref("Workflow"), nullptr},
      {"post", "/api/v1/workflows/{ns}/lint", "Validate a workflow without running it", wf_body, Ref("Workflow"), nullptr},
      {"post", "/api/v1/workflows/{ns}/submit", "Submit a workflow from a WorkflowTemplate or ClusterWorkflowTemplate",
       {{"type", "object"}, {"properties", {{"resourceKind", {{"type", "string"}}}, {"resourceName", {{"type", "string"}}}, {"submitOptions", {{"type", "object"}}}}}},
       Ref("Workflow"), nullptr},
      {"get", "/api/v1/workflows/{ns}", "List workflows, newest first", nullptr, list,
       Json::array({Param("listOptions.labelSelector", "query", "Kubernetes label selector"),
                    Param("phase", "query", "Only workflows in this phase"),
                    Param("listOptions.limit", "query", "Page size"),
                    Param("listOptions.continue", "query", "The previous page's metadata.continue")})},
      {"get", "/api/v1/workflows/{ns}/{name}", "A workflow with every node", nullptr, Ref("Workflow"), nullptr},
      {"delete", "/api/v1/workflows/{ns}/{name}", "Delete a workflow (a running one is terminated first)", nullptr, empty, nullptr},
      {"put", "/api/v1/workflows/{ns}/{name}/stop", "Stop: running steps stop, the exit handler runs", {{"type", "object"}}, Ref("Workflow"), nullptr},
      {"put", "/api/v1/workflows/{ns}/{name}/terminate", "Terminate: everything stops, no exit handler", nullptr, Ref("Workflow"), nullptr},
      {"put", "/api/v1/workflows/{ns}/{name}/resume", "Resume: a suspended workflow starts steps again, its suspend nodes succeed", nullptr, Ref("Workflow"), nullptr},
      {"put", "/api/v1/workflows/{ns}/{name}/suspend", "Suspend (spec.suspend): running steps go on, no new step starts until resume", nullptr, Ref("Workflow"), nullptr},
      {"put", "/api/v1/workflows/{ns}/{name}/retry", "Retry a Failed or Error workflow in place: its failed nodes run again",
       {{"type", "object"},
        {"properties",
         {{"restartSuccessful", {{"type", "boolean"}}},
          {"nodeFieldSelector", {{"type", "string"}}},
          {"parameters", {{"type", "array"}, {"items", {{"type", "string"}}}}}}}},
       Ref("Workflow"), nullptr},
      {"put", "/api/v1/workflows/{ns}/{name}/resubmit", "A new workflow from the same manifest and parameters", nullptr, Ref("Workflow"), nullptr},
      {"get", "/api/v1/workflows/{ns}/{name}/log", "Step logs as newline-delimited {result: {content, podName}}", nullptr,
       {{"type", "object"}, {"properties", {{"result", {{"type", "object"}}}}}},
       Json::array({Param("nodeId", "query", "The step (node id or name); all steps when absent"),
                    Param("follow", "query", "true: keep streaming until the step ends"),
                    Param("grep", "query", "Only lines matching this regular expression")})},
      {"get", "/api/v1/workflows/{ns}/{name}/artifacts/{node}/{artifact}", "Download an output artifact", nullptr, {{"type", "string"}, {"format", "binary"}},
       Json::array({Param("node", "path", "The node id"), Param("artifact", "path", "The artifact's name")})},
      {"get", "/api/v1/workflow-events/{ns}", "Watch workflow changes: newline-delimited {result: {type, object}}, or SSE", nullptr,
       {{"type", "object"}}, Json::array({Param("listOptions.fieldSelector", "query", "metadata.name=NAME")})},
      {"post", "/api/v1/workflow-templates/{ns}", "Create a WorkflowTemplate", tmpl_body, {{"type", "object"}}, nullptr},
      {"get", "/api/v1/workflow-templates/{ns}", "List WorkflowTemplates", nullptr, tlist, nullptr},
      {"get", "/api/v1/workflow-templates/{ns}/{name}", "A WorkflowTemplate", nullptr, {{"type", "object"}}, nullptr},
      {"put", "/api/v1/workflow-templates/{ns}/{name}", "Replace a WorkflowTemplate", tmpl_body, {{"type", "object"}}, nullptr},
      {"delete", "/api/v1/workflow-templates/{ns}/{name}", "Delete a WorkflowTemplate", nullptr, empty, nullptr},
      {"post", "/api/v1/cluster-workflow-templates", "Create a ClusterWorkflowTemplate (admin)", tmpl_body, {{"type", "object"}}, nullptr},
      {"get", "/api/v1/cluster-workflow-templates", "List ClusterWorkflowTemplates", nullptr, tlist, nullptr},
      {"get", "/api/v1/cluster-workflow-templates/{name}", "A ClusterWorkflowTemplate", nullptr, {{"type", "object"}}, nullptr},
      {"put", "/api/v1/cluster-workflow-templates/{name}", "Replace a ClusterWorkflowTemplate (admin)", tmpl_body, {{"type", "object"}}, nullptr},
      {"delete", "/api/v1/cluster-workflow-templates/{name}", "Delete a ClusterWorkflowTemplate (admin)", nullptr, empty, nullptr},
      {"get", "/healthz", "Liveness", nullptr, {{"type", "string"}}, nullptr},
      {"get", "/readyz", "Readiness: the store answers", nullptr, {{"type", "string"}}, nullptr},
      {"get", "/metrics", "Prometheus metrics", nullptr, {{"type", "string"}}, nullptr},
      {"get", "/api/v1/openapi.json", "This document", nullptr, {{"type", "object"}}, nullptr},
  };
  Json paths = Json::object();
  for (const Op& op : ops) {
    Json o = {{"summary", op.summary}, {"responses", errors}};
    o["responses"]["200"] = {{"description", "OK"}, {"content", Content(op.response)}};
    Json params = Json::array();
    if (op.path.find("{ns}") != std::string::npos) params.push_back(ns);
    if (op.path.find("{name}") != std::string::npos) params.push_back(name);
    if (op.query.is_array()) {
      for (const Json& q : op.query) params.push_back(q);
    }
    if (!params.empty()) o["parameters"] = params;
    if (!op.body.is_null()) o["requestBody"] = {{"content", Content(op.body)}};
    paths[op.path][op.method] = std::move(o);
  }
  Json node = {{"type", "object"},
               {"properties", {{"id", {{"type", "string"}}}, {"name", {{"type", "string"}}}, {"displayName", {{"type", "string"}}},
                               {"type", {{"type", "string"}}}, {"templateName", {{"type", "string"}}}, {"phase", {{"type", "string"}}},
                               {"boundaryID", {{"type", "string"}}}, {"children", {{"type", "array"}, {"items", {{"type", "string"}}}}},
                               {"startedAt", {{"type", "string"}, {"nullable", true}}}, {"finishedAt", {{"type", "string"}, {"nullable", true}}},
                               {"message", {{"type", "string"}}}, {"podName", {{"type", "string"}}},
                               {"inputs", {{"type", "object"}}}, {"outputs", {{"type", "object"}}}}}};
  Json workflow = {{"type", "object"},
                   {"properties", {{"metadata", {{"type", "object"}}},
                                   {"spec", {{"type", "object"}}},
                                   {"status", {{"type", "object"},
                                               {"properties", {{"phase", {{"type", "string"}}}, {"message", {{"type", "string"}}},
                                                               {"progress", {{"type", "string"}}},
                                                               {"nodes", {{"type", "object"}, {"additionalProperties", node}}}}}}}}}};
  Json error = {{"type", "object"},
                {"properties", {{"code", {{"type", "integer"}, {"description", "gRPC status code"}}},
                                {"message", {{"type", "string"}}},
                                {"details", {{"type", "array"}, {"items", {{"type", "object"}}}}}}}};
  return {{"openapi", "3.0.3"},
          {"info", {{"title", "kiln server"}, {"version", "0.1.0"},
                    {"description", "Argo Server-compatible workflow API of kiln (docs/api.md)"}}},
          {"components", {{"schemas", {{"Workflow", workflow}, {"Node", node}, {"Error", error}}},
                          {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}},
          {"security", Json::array({{{"bearer", Json::array()}}})},
          {"paths", std::move(paths)}};
}

}  // namespace

const std::string& OpenApiDocument() {
  static const std::string doc = Build().dump(2) + "\n";
  return doc;
}

}  // namespace kiln::api
